"""The simulated Clerk configuration and the app's admin checks: exact answers, exact security events."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import httpx
from kamkmserve_sim import SimServer
from kamkmserve_sim.identity import SECRET_KEY

from tests.helpers import local_http
from tests.sim.simkit import fetch, poll

Start = Callable[..., SimServer]
ADMIN_IP, MEMBER_IP = "10.20.0.50", "10.20.0.51"  # never among the simulated users' addresses
# The probe users' session cookies exactly as a client sends them (the wire contract, spelled out).
ADMIN = {"Cookie": "__session=sim_session_user_probe_admin", "x-forwarded-for": ADMIN_IP}
MEMBER = {"Cookie": "__session=sim_session_user_probe_member", "x-forwarded-for": MEMBER_IP}
COMMON = ["securityEvent", "timestamp"]


def events(server: SimServer, message: str, ip: str | None = None) -> list[dict[str, Any]]:
    """The security events with ``message`` (from client ``ip`` only, when given: traffic logs them too)."""
    text = local_http.get(f"{server.url}/_sim/logs", params={"limit": "5000"}, timeout=10).text
    lines = [json.loads(line) for line in text.splitlines() if line.startswith("{")]
    return [line for line in lines
            if line["message"] == f"Security event: {message}" and (ip is None or line.get("ip") == ip)]


def patch_identity(server: SimServer, name: str, value: str) -> httpx.Response:
    return local_http.patch(f"{server.url}/_sim/identity", json={"name": name, "value": value}, timeout=5)


def test_before_the_change_admins_get_in_and_members_are_refused_with_the_apps_bodies(start_sim: Start) -> None:
    server = start_sim(scenario="auth-misconfig", rps=0, onset_s=3600.0)
    assert fetch(server.url, "/admin", headers=ADMIN).status == 200
    assert fetch(server.url, "/api/admin/orders", headers=ADMIN).status == 200
    page = fetch(server.url, "/admin/orders", headers=MEMBER)
    assert (page.status, page.body) == (403, "Forbidden")
    api = fetch(server.url, "/api/admin/orders", headers=MEMBER)
    assert (api.status, api.body, api.header("content-type")) == (403, '{"error":"Forbidden"}', "application/json")
    # The member's claim says USER: the middleware says so, then the database role refuses.
    [claim] = events(server, "Non-admin claim used for admin route", MEMBER_IP)
    assert claim["context"]["claimRole"] == "USER" and list(claim["context"]) == ["feature", "claimRole", *COMMON]
    [failed] = events(server, "Admin role check failed", MEMBER_IP)
    assert failed["context"]["feature"] == "admin_role_check" and failed["context"]["role"] == "USER"
    assert list(failed["context"]) == ["feature", "userId", "role", *COMMON]
    assert (failed["path"], failed["method"], failed["ip"]) == ("/admin/orders", "GET", MEMBER_IP)
    assert "userAgent" not in failed  # http.client sends none: undefined fields are left out, as JSON.stringify does


def test_the_renamed_role_claim_locks_admins_out_with_the_middlewares_exact_events(start_sim: Start) -> None:
    server = start_sim(scenario="auth-misconfig", rps=0, onset_s=0.0)
    poll(lambda: local_http.get(f"{server.url}/_sim/identity", timeout=5).json()["history"], what="the claim rename")
    page = fetch(server.url, "/admin", headers=ADMIN)
    assert (page.status, page.body) == (403, "Forbidden")
    api = fetch(server.url, "/api/admin/services", headers=ADMIN)
    assert (api.status, api.body) == (403, '{"error":"Forbidden"}')
    [failed] = events(server, "Admin role check failed", ADMIN_IP)
    assert failed["context"]["userId"] == "user_probe_admin" and failed["context"]["role"] == "USER"
    [debug] = events(server, "Admin role check - Clerk claims debug", ADMIN_IP)
    assert debug["context"]["feature"] == "admin_role_debug"
    assert "userRole" in debug["context"]["claimsKeys"] and "claimRole" not in debug["context"]  # undefined: absent
    assert list(debug["context"]) == ["feature", "userId", "hasSessionClaims", "claimsKeys", *COMMON]
    [miss] = events(server, "Role cache miss or invalid", ADMIN_IP)
    assert miss["context"] == {"feature": "role_cache", "cookiePresent": False, "securityEvent": True,
                               "timestamp": miss["context"]["timestamp"]}
    assert events(server, "Non-admin claim used for admin route", ADMIN_IP) == []  # no claim at all now
    # Putting the claim back lets the admin in at once (tokens are re-minted from the template).
    assert patch_identity(server, "role_claim", "role").json()["changed"] is True
    assert fetch(server.url, "/admin", headers=ADMIN).status == 200


def test_routes_without_a_check_answer_a_non_admin_and_a_stranger(start_sim: Start) -> None:
    server = start_sim(scenario="auth-misconfig", rps=0, onset_s=3600.0)
    for method, path in (("PATCH", "/api/admin/coupons/nope"), ("GET", "/api/admin/orders/nope"),
                         ("POST", "/api/admin/payouts/nope/mark-paid"), ("GET", "/api/admin/payouts/export")):
        answer = fetch(server.url, path, method=method, headers={**MEMBER, "content-type": "application/json"},
                       body=b"{}" if method != "GET" else None)
        assert answer.status == 200, (method, path, answer.status)
    assert fetch(server.url, "/api/admin/orders/nope").status == 200  # signed out, too
    assert fetch(server.url, "/api/admin/coupons/nope").status == 405  # GET has no handler there (fixture 6e)


def test_a_revoked_secret_key_makes_every_admin_check_error(start_sim: Start) -> None:
    server = start_sim(scenario="auth-key-rotated", rps=0, onset_s=0.0)
    poll(lambda: local_http.get(f"{server.url}/_sim/identity", timeout=5).json()["history"], what="the rotation")
    facts = local_http.get(f"{server.url}/_sim/identity", timeout=5).json()["facts"]
    assert facts["secret_key_status"] == "revoked"
    page = fetch(server.url, "/admin", headers=ADMIN)
    assert (page.status, page.body) == (403, "Forbidden")
    [errored] = events(server, "Admin role check errored", ADMIN_IP)
    assert list(errored["context"]) == ["feature", "userId", "error", *COMMON]
    assert set(errored["context"]["error"]) == {"message", "stack"}
    api = fetch(server.url, "/api/admin/orders", headers=ADMIN)
    assert (api.status, api.body) == (500, '{"error":"Auth check failed"}')


def test_switched_off_admin_features_are_answered_by_the_edge(start_sim: Start) -> None:
    server = start_sim(scenario="auth-misconfig", rps=0, onset_s=3600.0)
    local_http.post(f"{server.url}/_sim/flags", json={"name": "admin-console", "enabled": False}, timeout=5)
    page = fetch(server.url, "/admin/orders", headers=ADMIN)
    assert page.status == 503 and page.header("x-sim-edge") == "maintenance"
    assert events(server, "Role cache miss or invalid", ADMIN_IP) == []  # the app never saw it
    assert fetch(server.url, "/api/admin/orders", headers=ADMIN).status == 200  # admin-api is still on


def test_an_unknown_session_is_signed_out(start_sim: Start) -> None:
    server = start_sim(scenario="auth-misconfig", rps=0, onset_s=3600.0)
    assert fetch(server.url, "/admin", headers={"Cookie": "__session=eyJhbGciOi.forged"}).status == 307
    assert fetch(server.url, "/api/admin/orders", headers={"Cookie": "__session=sim_session_nobody"}).status == 401


def test_identity_console_redacts_secrets_changes_one_setting_and_looks_users_up(start_sim: Start) -> None:
    server = start_sim(scenario="healthy", rps=0)
    body = local_http.get(f"{server.url}/_sim/identity", timeout=5)
    assert SECRET_KEY not in body.text and SECRET_KEY[-4:] in body.json()["settings"]["secret_key"]
    assert body.json()["facts"] == {"publishable_key_instance": "clerk.kamkm.example",
                                    "secret_key_instance": "clerk.kamkm.example", "secret_key_status": "active",
                                    "jwks_reachable": True}
    changed = patch_identity(server, "jwks_url", "https://wrong.example/jwks.json").json()
    assert changed["previous"] == "https://clerk.kamkm.example/.well-known/jwks.json" and changed["changed"]
    again = local_http.get(f"{server.url}/_sim/identity", timeout=5).json()
    assert again["facts"]["jwks_reachable"] is False and again["history"][-1]["name"] == "jwks_url"
    assert patch_identity(server, "jwks_url", "https://wrong.example/jwks.json").json()["changed"] is False
    assert patch_identity(server, "nope", "x").status_code == 404
    assert patch_identity(server, "role_cache_ttl_s", "soon").status_code == 422
    roles = local_http.get(f"{server.url}/_sim/identity/users", params={"ids": "user_probe_admin,user_x"}, timeout=5)
    assert roles.json() == {"roles": {"user_probe_admin": "ADMIN", "user_x": None}}


def test_status_page_posts_updates_and_refuses_bad_input(start_sim: Start) -> None:
    server = start_sim(scenario="healthy", rps=0)
    plane = httpx.Client(base_url=f"{server.url}/_sim", timeout=5)
    posted = plane.post("/status", json={"title": "Admin", "body": "looking", "status": "investigating"})
    assert posted.status_code == 201
    incident_id = posted.json()["id"]
    updated = plane.patch(f"/status/{incident_id}", json={"body": "fixed", "status": "resolved"}).json()
    assert [u["status"] for u in updated["updates"]] == ["investigating", "resolved"]
    assert plane.get("/status").json()["incidents"][0]["status"] == "resolved"
    assert plane.post("/status", json={"title": "x", "body": "y", "status": "panic"}).status_code == 422
    assert plane.patch("/status/st_9999", json={"body": "y", "status": "resolved"}).status_code == 404


def test_traffic_brings_admin_checks_and_baseline_denials_stay_a_minority(start_sim: Start) -> None:
    server = start_sim(scenario="auth-misconfig", rps=0, onset_s=3600.0)  # the prefilled minute only
    checks = len(events(server, "Admin role check - Clerk claims debug"))
    refused = len(events(server, "Admin role check failed"))
    assert checks >= 5 and refused < checks / 2
