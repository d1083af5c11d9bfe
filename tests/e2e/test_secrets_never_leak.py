"""Seeded secrets never leave the places they are meant for.

Every secret setting gets a distinctive value, delivered the documented way: a ``remediate.toml`` whose
``[secrets]`` name environment variables, and one Prefect Secret block. Then the whole path runs: an alert is
delivered to the intake with the seeded bearer token, the elevated-5xx runbook answers it on the simulator with
every notification channel on (Slack, Statuspage, PagerDuty fakes that *must* receive their credentials), approvals
are granted, the run recovers, and ``remediate check`` is run too.

Then we look everywhere a value could have leaked and find none: every log record of every logger (httpx's
request lines included), the console, Prefect's run logs and artifacts and the run's parameters (read back through
the Prefect API), the incident report, the intake's answers, ``remediate check --json``, and every byte of the
store's database file. Positive controls make sure each place was really searched (the incident id, or the run's
last line, is in each) and that each credential was really used (each fake saw it).
"""

from __future__ import annotations

import asyncio
import json
import os
import uuid
from pathlib import Path
from typing import Any

import pytest
from kamkmserve_sim import SimConfig, SimServer
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import (
    ArtifactFilter,
    ArtifactFilterFlowRunId,
    LogFilter,
    LogFilterFlowRunId,
)
from prefect.logging.handlers import APILogHandler
from starlette.testclient import TestClient
from typer.testing import CliRunner

from flows.elevated_error_rate import elevated_error_rate
from remediation import composition, runtime
from remediation.cli import app as cli
from remediation.config_file import secret_fields
from remediation.intake import create_app
from remediation.providers.approvals import Scripted, ScriptedApprovals
from remediation.settings import Settings
from remediation.settings_vendors import flat_values
from tests.flows.flowkit import FAST, wait_for_bad_release
from tests.helpers.fake_notify import FakePagerDuty, FakeSlack, FakeStatuspage

pytestmark = pytest.mark.usefixtures("prefect_api")


class RecordingStarter:
    """Stands in for Prefect's run_deployment: records what intake would start."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, dict[str, Any], str]] = []

    async def start(self, deployment: str, parameters: dict[str, Any], idempotency_key: str) -> str:
        self.calls.append((deployment, dict(parameters), idempotency_key))
        return str(uuid.uuid4())


def seeded(name: str) -> str:
    """A value nobody could produce by accident; PagerDuty keys must be 32 characters."""
    marker = f"LEAK{uuid.uuid4().hex[:10]}{name.upper().replace('_', '')}"
    return (marker + "X" * 32)[:32] if "routing_key" in name else f"sk_{marker}"


async def test_no_seeded_secret_appears_in_logs_artifacts_reports_or_the_store(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture, capfd: pytest.CaptureFixture[str]
) -> None:
    for name in [n for n in os.environ if n.startswith("REMEDIATE_")]:
        monkeypatch.delenv(name)
    values = {name: seeded(name) for name in sorted(secret_fields(Settings))}
    slack_token = values["slack_webhook_url"]
    server = SimServer(SimConfig(scenario="bad-release", rps=200.0, onset_s=0.2, seed=11)).start()
    with FakeSlack((slack_token,)) as slack, FakeStatuspage(values["statuspage_api_key"]) as page, \
            FakePagerDuty((values["pagerduty_routing_key"], values["pagerduty_secondary_routing_key"],
                           values["pagerduty_duty_manager_routing_key"])) as pager:
        values["slack_webhook_url"] = slack.webhook_url(slack_token)  # the URL is the secret; its token too
        needles = {**values, "slack token": slack_token}

        # The documented delivery: [secrets] by environment variable, and one Prefect Secret block.
        from prefect.blocks.system import Secret

        block = f"leak-test-statuspage-{uuid.uuid4().hex[:8]}"
        await Secret(value=values["statuspage_api_key"]).save(block, overwrite=True)
        refs = {name: f'{{ env = "SEEDED_{name.upper()}" }}' for name in values if name != "statuspage_api_key"}
        refs["statuspage_api_key"] = f'{{ prefect_secret = "{block}" }}'
        for name in refs:
            if name != "statuspage_api_key":
                monkeypatch.setenv(f"SEEDED_{name.upper()}", values[name])
        store_file = tmp_path / "store.db"
        config = tmp_path / "remediate.toml"
        config.write_text("\n".join([
            f'app_url = "{server.url}"', 'platform = "sim"', f'sim_url = "{server.url}"', 'mode = "auto"',
            'approvers = ["alice", "bob"]',
            f'home = "{tmp_path}"', f'database_url = "sqlite:///{store_file}"', "approval_timeout_s = 30",
            "verify_interval_s = 0.3", "verify_consecutive = 3", "verify_deadline_s = 20.0",
            "metrics_budget_per_min = 100",
            "[statuspage]", f'page_id = "{page.page_id}"', 'component_ids = ["cmp_web"]',
            f'api_url = "{page.url}/v1"',
            "[pagerduty]", f'events_url = "{pager.events_url}"',
            "[capabilities]", 'notify = ["slack", "statuspage", "pagerduty"]',
            "[secrets]", *(f"{name} = {ref}" for name, ref in refs.items()), ""]))
        monkeypatch.setenv("REMEDIATE_CONFIG", str(config))
        caplog.set_level("DEBUG")  # every logger, every level: httpx's request lines included

        settings = Settings()
        seeded_values = flat_values(settings)  # by flat name: the vendor groups' secrets (settings.slack...) too
        assert all(seeded_values[name].get_secret_value() == value for name, value in values.items())

        # An alert arrives at the intake with the seeded bearer token.
        providers = composition.connect(settings)
        starter = RecordingStarter()
        with TestClient(create_app(settings, providers.store, starter)) as intake:
            denied = intake.post("/alerts/generic", json={"name": "HighErrorRate", "service": "kamkmserve"},
                                 headers={"Authorization": "Bearer wrong-token"})
            accepted = intake.post("/alerts/generic", headers={"Authorization": f"Bearer {values['intake_token']}"},
                                   json={"name": "HighErrorRate", "service": "kamkmserve", "severity": "SEV-1"})
        assert denied.status_code == 401 and accepted.status_code == 200, accepted.text
        (_, parameters, _), = starter.calls

        # The runbook answers it, notifications on, approvals granted (a SEV-1 rollback needs two people).
        wait_for_bad_release(server)
        approvals = ScriptedApprovals([Scripted(approve=True, approver=name, reason="ok")
                                       for name in ("alice", "bob") * 3])
        with runtime.use(providers.with_(approvals=approvals)):
            summary = await elevated_error_rate(**{**FAST, **parameters, "mode": "auto"})
        assert summary["outcome"] == "recovered", summary["escalation"]
        incident_id, run_id = summary["incident_id"], summary["flow_run_id"]
        check = await asyncio.to_thread(CliRunner().invoke, cli, ["check", "--json"])  # it runs its own loop
        await APILogHandler.aflush()
    server.stop()

    # Each credential was really used where it belongs.
    assert slack.messages, "Slack got the timeline through the seeded webhook"
    assert any(r.headers.get("authorization") == f"OAuth {values['statuspage_api_key']}" for r in page.requests)
    assert page.incidents, "a SEV-1 containment opened a Statuspage incident"
    assert {e["routing_key"] for e in pager.events} == {values["pagerduty_routing_key"]}
    assert [a for _, a in pager.actions()] == ["trigger", "acknowledge", "resolve"]

    # Everywhere a value could leak.
    async with get_client() as client:
        run_logs = await client.read_logs(log_filter=LogFilter(flow_run_id=LogFilterFlowRunId(any_=[run_id])))
        artifacts = await client.read_artifacts(
            artifact_filter=ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=[run_id])))
        flow_run = await client.read_flow_run(uuid.UUID(run_id))
    report = providers.store.get_report(incident_id)
    assert report is not None
    providers.store.dispose()
    console = capfd.readouterr()
    places: dict[str, str] = {
        "log records": "\n".join(f"{r.name} {r.getMessage()} {r.exc_text or ''}" for r in caplog.records),
        "console": console.out + console.err,
        "prefect run logs": "\n".join(log.message for log in run_logs),
        "prefect artifacts": json.dumps([a.data for a in artifacts], default=str),
        "flow run parameters": json.dumps(flow_run.parameters, default=str),
        "incident report": report.model_dump_json() + json.dumps(summary, default=str),
        "intake answers": denied.text + accepted.text + json.dumps(starter.calls),
        "remediate check": check.output,
        "store file": b"".join(p.read_bytes() for p in tmp_path.glob("store.db*")).decode("latin-1"),
    }
    # Positive controls: every place was really searched (the incident is in each), httpx really logged requests.
    for place in ("log records", "prefect artifacts", "incident report", "store file"):
        assert incident_id in places[place], place
    assert "[close] outcome recovered" in places["prefect run logs"]
    assert len(artifacts) >= 3 and len(run_logs) > 10
    assert json.loads(check.output)["platform"] == "sim"

    leaks = [(place, name) for place, text in places.items() for name, value in needles.items() if value in text]
    assert leaks == []
    # httpx logged the webhook requests, and what it logged was scrubbed: the filter, not luck, kept them out.
    assert "HTTP Request: POST" in places["log records"] and "[redacted]" in places["log records"]
