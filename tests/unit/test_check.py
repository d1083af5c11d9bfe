"""`remediate check`: every configured capability answers a read-only question; failures say which and why;
nothing anywhere is changed; no secret is printed."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any

import pytest
from typer.testing import CliRunner

from remediation import cli
from remediation.check import CheckReport, run_check
from remediation.cli import app
from remediation.settings import Settings
from tests.helpers import local_http
from tests.helpers.fake_notify import FakePagerDuty, FakeSlack, FakeStatuspage

if TYPE_CHECKING:
    from kamkmserve_sim import SimServer

SLACK_TOKEN = "checkSlackTokenSECRET0001"
STATUSPAGE_KEY = "check-statuspage-SECRET-01"
PD_KEY = "c" * 24 + "SECRET01"


@pytest.fixture(scope="module")
def sim(simulator: ModuleType) -> Iterator[SimServer]:
    """The healthy simulator, once its traffic has reached the app: until a first request is served the metrics page
    has no request series, and check rightly calls the metrics capability degraded (it did, once, right at start)."""
    server = simulator.SimServer(simulator.SimConfig(scenario="healthy", rps=20.0, seed=3)).start()
    deadline = time.monotonic() + 30
    while local_http.get(f"{server.url}/_sim/state", timeout=5).json()["stats"]["app_served"] < 1:
        assert time.monotonic() < deadline, "the simulator served no request in 30 s"
        time.sleep(0.05)
    yield server
    server.stop()


@pytest.fixture
def fakes() -> Iterator[tuple[FakeSlack, FakeStatuspage, FakePagerDuty]]:
    with FakeSlack((SLACK_TOKEN,)) as slack, FakeStatuspage(STATUSPAGE_KEY) as page, FakePagerDuty((PD_KEY,)) as pd:
        yield slack, page, pd


def notify_settings(slack: FakeSlack, page: FakeStatuspage, pd: FakePagerDuty) -> dict[str, Any]:
    return {"slack_webhook_url": slack.webhook_url(SLACK_TOKEN), "statuspage_api_key": STATUSPAGE_KEY,
            "statuspage_page_id": page.page_id, "statuspage_api_url": f"{page.url}/v1",
            "pagerduty_routing_key": PD_KEY, "pagerduty_events_url": pd.events_url}


def rows(report: CheckReport) -> dict[str, Any]:
    return {row.capability: row for row in report.rows}


def state(sim: SimServer) -> dict[str, Any]:
    body: dict[str, Any] = local_http.get(f"{sim.url}/_sim/state", timeout=5).json()
    return {k: body[k] for k in ("current_release", "maintenance", "flags")}


async def test_every_capability_of_the_simulator_and_every_channel_answers(
    sim: SimServer, fakes: tuple[FakeSlack, FakeStatuspage, FakePagerDuty], tmp_path: Path
) -> None:
    slack, page, pd = fakes
    before = state(sim)
    report = await run_check(Settings(app_url=sim.url, platform="sim", sim_url=sim.url, home=tmp_path,
                                      **notify_settings(slack, page, pd)))
    by = rows(report)
    assert report.ok, [r for r in report.rows if r.status == "failing"]
    for capability in ("metrics", "deploys", "edge", "logs", "errors", "capacity", "jobs", "database", "blocks",
                       "uploads", "antivirus", "identity", "audit", "status_page", "notify:slack",
                       "notify:statuspage"):
        assert by[capability].status == "ok", by[capability]
        assert by[capability].reachable is True and by[capability].authorised is True, capability
    assert by["deploys"].implementation == "sim" and "current v1.4.2" in by["deploys"].detail
    assert by["notify:pagerduty"].reachable is True and by["notify:pagerduty"].authorised is None
    assert "not created yet" in by["store"].detail and not (tmp_path / "remediate.db").exists()
    # read-only: the platform, Slack, Statuspage and PagerDuty are exactly as they were
    assert state(sim) == before
    assert slack.messages == [] and page.incidents == {} and pd.events == []
    assert {r.method for r in page.requests} == {"GET"}


async def test_failures_say_which_capability_and_why_without_the_secret(
    sim: SimServer, fakes: tuple[FakeSlack, FakeStatuspage, FakePagerDuty], tmp_path: Path
) -> None:
    slack, page, pd = fakes
    wrong = {**notify_settings(slack, page, pd), "slack_webhook_url": slack.webhook_url("revokedSlackSECRET0002"),
             "statuspage_api_key": "wrong-statuspage-SECRET-02"}
    report = await run_check(Settings(app_url="http://127.0.0.1:9", platform="sim", sim_url=sim.url, home=tmp_path,
                                      http_timeout_s=1.0, capabilities={"errors": "sentry"}, **wrong))
    by = rows(report)
    assert not report.ok
    assert by["metrics"].status == "failing" and by["metrics"].reachable is False
    assert by["notify:slack"].status == "failing" and by["notify:slack"].authorised is False
    assert by["notify:statuspage"].authorised is False
    assert by["errors"].status == "failing" and by["errors"].implementation == "sentry"
    assert set(by["errors"].missing) >= {"REMEDIATE_SENTRY_API_TOKEN", "REMEDIATE_SENTRY_ORG",
                                         "REMEDIATE_SENTRY_PROJECT"}
    assert by["deploys"].status == "ok", "the platform itself is fine: only what is broken fails"
    dumped = report.model_dump_json()
    assert "SECRET" not in dumped


async def test_a_lever_switched_off_or_missing_on_the_platform_is_absent_not_failing(sim: SimServer,
                                                                                    tmp_path: Path) -> None:
    report = await run_check(Settings(app_url=sim.url, platform="sim", sim_url=sim.url, home=tmp_path,
                                      capabilities={"capacity": "none"}))
    by = rows(report)
    assert by["capacity"].status == "absent" and "switched off" in by["capacity"].detail
    assert by["notify:slack"].status == "absent" and by["notify:slack"].missing == ("REMEDIATE_SLACK_WEBHOOK_URL",)


def test_cli_prints_a_table_and_json_and_exits_by_the_result(
    sim: SimServer, fakes: tuple[FakeSlack, FakeStatuspage, FakePagerDuty], tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch
) -> None:
    slack, page, pd = fakes
    for name in [n for n in os.environ if n.startswith("REMEDIATE_")]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("REMEDIATE_APP_URL", sim.url)
    monkeypatch.setenv("REMEDIATE_PLATFORM", "sim")
    monkeypatch.setenv("REMEDIATE_SIM_URL", sim.url)
    monkeypatch.setenv("REMEDIATE_HOME", str(tmp_path))
    for key, value in notify_settings(slack, page, pd).items():
        monkeypatch.setenv(f"REMEDIATE_{key.upper()}", value)
    # The CLI's console is built at import, sized by whatever terminal imported it first: give it a wide one.
    monkeypatch.setattr(cli.console, "width", 200)
    runner = CliRunner()
    table = runner.invoke(app, ["check"])
    assert table.exit_code == 0, table.output
    assert "capability" in table.output and "notify:statuspage" in table.output and "all configured" in table.output
    monkeypatch.setenv("REMEDIATE_STATUSPAGE_API_KEY", "wrong-statuspage-SECRET-03")
    as_json = runner.invoke(app, ["check", "--json"])
    assert as_json.exit_code == 1
    body = json.loads(as_json.output)
    assert body["ok"] is False and body["platform"] == "sim"
    failing = [r["capability"] for r in body["rows"] if r["status"] == "failing"]
    assert failing == ["notify:statuspage"]
    assert "SECRET" not in as_json.output and SLACK_TOKEN not in table.output


def test_cli_reports_a_broken_configuration_file_without_a_traceback(tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "remediate.toml"
    path.write_text("[capabilities]\nerrors = 'datadog'\n")
    monkeypatch.setenv("REMEDIATE_CONFIG", str(path))
    result = CliRunner().invoke(app, ["check"])
    assert result.exit_code == 2
    assert "configuration error" in result.output and "datadog" in result.output


async def test_without_a_platform_every_lever_is_absent_and_nothing_is_sent_under_sim(sim: SimServer,
                                                                                      tmp_path: Path) -> None:
    """Only REMEDIATE_APP_URL set: no lever is built (absent, with why), reads still answer, and the app's URL is
    never sent a /_sim request (the simulator here records every request it serves)."""
    report = await run_check(Settings(app_url=sim.url, home=tmp_path))
    by = rows(report)
    assert report.platform == "none" and by["platform"].status == "absent"
    for lever in ("deploys", "edge", "capacity", "jobs", "instances", "blocks", "uploads", "identity"):
        assert by[lever].status == "absent", by[lever]
        assert "no platform chosen" in by[lever].detail or by[lever].missing, by[lever]
    assert by["metrics"].status == "ok" and by["metrics"].reachable is True
    assert by["logs"].status == "absent" and "REMEDIATE_LOG_FILES" in by["logs"].missing
    assert by["errors"].status == "absent" and "REMEDIATE_SENTRY_API_TOKEN" in by["errors"].missing


async def test_vercel_without_its_settings_is_absent_never_ok(tmp_path: Path) -> None:
    """REMEDIATE_PLATFORM=vercel with no Vercel or Clerk settings: the levers say what they miss; none says ok."""
    report = await run_check(Settings(app_url="http://127.0.0.1:9", platform="vercel", home=tmp_path,
                                      http_timeout_s=1.0))
    by = rows(report)
    for lever in ("deploys", "edge", "blocks", "uploads", "identity"):
        assert by[lever].status == "absent" and by[lever].missing, by[lever]
    assert "REMEDIATE_VERCEL_TOKEN" in by["blocks"].missing
    assert by["identity"].missing == ("REMEDIATE_CLERK_SECRET_KEY",)
