"""The /_sim control plane contract: shapes, idempotency, validation, logs, errors and injected faults."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from kamkmserve_sim import SimServer
from prometheus_client.parser import text_string_to_metric_families

from tests.sim.simkit import fetch, poll

RELEASE_KEYS = ["id", "version", "created_at", "promoted_at", "state"]


@pytest.fixture
def quiet(start_sim: Callable[..., SimServer]) -> Iterator[tuple[SimServer, httpx.Client]]:
    server = start_sim(rps=0)
    with httpx.Client(base_url=server.url + "/_sim", timeout=30) as client:
        yield server, client


def test_state_has_the_contract_shape(quiet: tuple[SimServer, httpx.Client]) -> None:
    _, plane = quiet
    state = plane.get("/state").json()
    assert list(state) == ["scenario", "current_release", "maintenance", "flags", "request_metrics", "faults",
                           "stats"]
    assert state["scenario"] == "healthy" and state["maintenance"] == [] and state["flags"] == {}
    assert list(state["current_release"]) == RELEASE_KEYS and state["current_release"]["version"] == "v1.4.2"
    assert state["faults"]["metrics"] == "ok"
    assert state["stats"] == {"app_served": 0, "edge_served": 0, "errors_5xx": 0}


def test_deploy_promotes_lists_newest_first_and_never_shows_the_fault(quiet: tuple[SimServer, httpx.Client]) -> None:
    _, plane = quiet
    created = plane.post("/releases", json={"version": "v1.6.0", "fault": {"error_share": 0.5,
                                                                           "paths": ["/api/cart"],
                                                                           "extra_latency_ms": 20}})
    assert created.status_code == 201
    release = created.json()
    assert list(release) == RELEASE_KEYS and release["state"] == "current" and release["id"].startswith("dpl_")
    listing = plane.get("/releases").json()
    assert listing["current"] == release["id"]
    assert [(r["version"], r["state"]) for r in listing["releases"]] == [("v1.6.0", "current"),
                                                                         ("v1.4.2", "previous")]
    assert "fault" not in json.dumps(listing) and "error_share" not in json.dumps(listing)


@pytest.mark.parametrize("body", [{}, {"version": ""}, {"version": "v2", "fault": {"error_share": 1.5}},
                                  {"version": "v2", "fault": {"paths": ["api"]}},
                                  {"version": "v2", "fault": {"extra_latency_ms": -1}}])
def test_deploy_rejects_bodies_outside_the_contract(quiet: tuple[SimServer, httpx.Client],
                                                    body: dict[str, object]) -> None:
    _, plane = quiet
    answer = plane.post("/releases", json=body)
    assert answer.status_code == 422 and "error" in answer.json()


def test_rollback_defaults_to_previous_is_idempotent_and_404s_unknown_ids(
        quiet: tuple[SimServer, httpx.Client]) -> None:
    _, plane = quiet
    old = plane.get("/state").json()["current_release"]
    plane.post("/releases", json={"version": "v1.5.0", "fault": None})
    rolled = plane.post("/releases/rollback").json()
    assert rolled["changed"] is True and rolled["current"]["id"] == old["id"]
    assert rolled["current"]["promoted_at"] > old["promoted_at"]  # promoted_at is the latest promotion
    again = plane.post("/releases/rollback", json={"to": old["id"]}).json()
    assert again == {"current": plane.get("/state").json()["current_release"], "changed": False}
    missing = plane.post("/releases/rollback", json={"to": "dpl_nope"})
    assert missing.status_code == 404 and "dpl_nope" in missing.json()["error"]
    states = {r["version"]: r["state"] for r in plane.get("/releases").json()["releases"]}
    assert states == {"v1.4.2": "current", "v1.5.0": "previous"}


def test_rollback_with_nothing_before_is_a_conflict(quiet: tuple[SimServer, httpx.Client]) -> None:
    _, plane = quiet
    answer = plane.post("/releases/rollback", json={})
    assert answer.status_code == 409 and "error" in answer.json()


def test_maintenance_is_idempotent_and_validates_prefixes(quiet: tuple[SimServer, httpx.Client]) -> None:
    _, plane = quiet
    on = {"prefix": "/api/checkout", "enabled": True}
    assert plane.post("/maintenance", json=on).json() == {"prefixes": ["/api/checkout"], "changed": True}
    assert plane.post("/maintenance", json=on).json() == {"prefixes": ["/api/checkout"], "changed": False}
    assert plane.get("/maintenance").json() == {"prefixes": ["/api/checkout"]}
    off = {"prefix": "/api/checkout", "enabled": False}
    assert plane.post("/maintenance", json=off).json() == {"prefixes": [], "changed": True}
    assert plane.post("/maintenance", json=off).json()["changed"] is False
    assert plane.post("/maintenance", json={"prefix": "api", "enabled": True}).status_code == 422
    assert plane.post("/maintenance", json={"prefix": "/x", "enabled": "yes"}).status_code == 422


def test_flags_are_idempotent_and_keep_a_history(quiet: tuple[SimServer, httpx.Client]) -> None:
    _, plane = quiet
    first = plane.post("/flags", json={"name": "checkout", "enabled": False}).json()
    assert [first["name"], first["enabled"], first["changed"]] == ["checkout", False, True]
    again = plane.post("/flags", json={"name": "checkout", "enabled": False}).json()
    assert again["changed"] is False and again["updated_at"] == first["updated_at"]
    plane.post("/flags", json={"name": "checkout", "enabled": True})
    flags = plane.get("/flags").json()
    assert flags["flags"]["checkout"]["enabled"] is True
    assert [(h["name"], h["enabled"]) for h in flags["history"]] == [("checkout", False), ("checkout", True)]
    assert all(set(h) == {"name", "enabled", "at"} for h in flags["history"])


def test_logs_start_with_the_banner_and_filter_by_since_limit_and_stream(
        quiet: tuple[SimServer, httpx.Client]) -> None:
    server, plane = quiet
    first = plane.get("/logs")
    assert first.headers["content-type"].startswith("application/x-ndjson")
    lines = first.text.split("\n")
    assert lines[0] == "   \u25b2 Next.js 15.5.0" and lines[1].endswith(f"localhost:{server.config.port}")
    fetch(server.url, "/admin", headers={"Authorization": "Basic YWRtaW46cHc="})  # one security event
    stderr = plane.get("/logs", params={"stream": "stderr"}).text.splitlines()
    assert len(stderr) == 1 and json.loads(stderr[0])["message"] == "Security event: Admin Basic Auth attempt failed"
    assert plane.get("/logs", params={"limit": 1}).text == stderr[0] + "\n"
    future = (datetime.now(UTC) + timedelta(minutes=1)).isoformat().replace("+00:00", "Z")
    assert plane.get("/logs", params={"since": future}).text == ""
    stamp = json.loads(stderr[0])["timestamp"]
    assert plane.get("/logs", params={"since": stamp}).text == stderr[0] + "\n"  # inclusive
    assert plane.get("/logs", params={"since": "yesterday"}).status_code == 422
    assert plane.get("/logs", params={"stream": "both"}).status_code == 422


def test_errors_follow_sentry_issue_list_field_names(start_sim: Callable[..., SimServer]) -> None:
    server = start_sim(rps=300)
    with httpx.Client(base_url=server.url + "/_sim") as plane:
        plane.post("/releases", json={"version": "v9", "fault": {"error_share": 1.0, "paths": ["/api/checkout"]}})
        issues = poll(lambda: plane.get("/errors").json(), what="an issue")
    issue = issues[0]
    assert list(issue) == ["id", "shortId", "title", "culprit", "level", "status", "count", "userCount",
                           "firstSeen", "lastSeen", "release"]
    assert issue["id"] == "4500001" and issue["shortId"] == "JAVASCRIPT-NEXTJS-1"
    assert issue["culprit"] == "POST /api/checkout" and issue["release"] == "v9"
    assert issue["count"].isdigit() and isinstance(issue["userCount"], int)
    assert issue["title"].startswith("TypeError: ")


def test_metrics_down_answers_503_html_on_both_endpoints(quiet: tuple[SimServer, httpx.Client]) -> None:
    server, plane = quiet
    assert plane.post("/faults", json={"metrics": "down"}).json()["faults"]["metrics"] == "down"
    for path in ("/api/monitoring/metrics", "/monitoring/metrics?format=health"):
        answer = fetch(server.url, path)
        assert answer.status == 503 and answer.header("content-type") == "text/html; charset=utf-8"
        assert answer.body.startswith("<!DOCTYPE html>")
    assert fetch(server.url, "/monitoring/health").status == 200  # the static probe never fails


def test_metrics_slow_delays_the_answer(quiet: tuple[SimServer, httpx.Client]) -> None:
    server, plane = quiet
    plane.post("/faults", json={"metrics": "slow", "slow_seconds": 0.6})
    started = time.monotonic()
    answer = fetch(server.url, "/api/monitoring/metrics")
    assert answer.status == 200 and time.monotonic() - started >= 0.6
    assert "process_uptime_seconds" in answer.body


def test_metrics_garbage_is_200_text_no_prometheus_parser_accepts(quiet: tuple[SimServer, httpx.Client]) -> None:
    server, plane = quiet
    plane.post("/faults", json={"metrics": "garbage"})
    answer = fetch(server.url, "/api/monitoring/metrics")
    assert answer.status == 200 and answer.header("content-type") == "text/plain"
    with pytest.raises(ValueError):
        list(text_string_to_metric_families(answer.body))


def test_metrics_html_is_200_text_html(quiet: tuple[SimServer, httpx.Client]) -> None:
    server, plane = quiet
    plane.post("/faults", json={"metrics": "html"})
    for path in ("/api/monitoring/metrics", "/monitoring/metrics?format=health"):
        answer = fetch(server.url, path)
        assert answer.status == 200 and answer.header("content-type") == "text/html; charset=utf-8"
    plane.post("/faults", json={"metrics": "ok"})
    assert fetch(server.url, "/api/monitoring/metrics").header("content-type") == "text/plain; version=0.0.4"


def test_faults_reject_unknown_values(quiet: tuple[SimServer, httpx.Client]) -> None:
    _, plane = quiet
    assert plane.post("/faults", json={"metrics": "broken"}).status_code == 422
    assert plane.post("/faults", json={"slow_seconds": -1}).status_code == 422
    assert plane.post("/faults", json={"request_metrics": 1}).status_code == 422


def test_scenario_restart_gives_a_fresh_world(quiet: tuple[SimServer, httpx.Client]) -> None:
    server, plane = quiet
    plane.post("/maintenance", json={"prefix": "/api", "enabled": True})
    fetch(server.url, "/api/cart")
    state = plane.post("/scenario", json={"name": "bad-release"}).json()
    assert state["scenario"] == "bad-release" and state["maintenance"] == []
    assert state["stats"]["edge_served"] == 0 and state["stats"]["app_served"] == 200  # the warm-up
    assert plane.post("/scenario", json={"name": "nope"}).status_code == 404
