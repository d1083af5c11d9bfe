"""The ``app_rate_limit`` finding covers every read of the run, not only the last reading.

A run's reads go through one ``AppHttp`` that the process shares between runs; the run's share is the
difference of two tallies. The app is an ``httpx.MockTransport`` replaying the captured 429, and the request
budget's clock is injected, so waiting out a Retry-After takes no time.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import httpx

from remediation.models import Finding, FindingStatus, Phase
from remediation.providers.budget import RequestBudget
from remediation.providers.http import AppHttp
from remediation.providers.metrics import AppMetrics, app_reads
from remediation.rate_limit_finding import close_rate_limit_finding, rate_limit_finding, run_app_reads

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "kamkmserve"
GOOD_PAGE = (
    "# TYPE process_uptime_seconds gauge\nprocess_uptime_seconds 12.5\n"
    "# TYPE http_requests_total counter\n"
    + 'http_requests_total{method="GET",path="/",status="200"} 1\n' * 30
)


def captured_429() -> httpx.Response:
    raw = (FIXTURES / "ratelimited-metrics-429.http").read_text().split("\n")
    start = next(i for i, line in enumerate(raw) if line.startswith("HTTP/1.1"))
    blank = raw.index("", start)
    headers = {k.strip(): v.strip() for k, _, v in (line.partition(":") for line in raw[start + 1:blank])}
    headers.pop("transfer-encoding", None)
    return httpx.Response(int(raw[start].split()[1]), headers=headers, text="Too Many Requests")


class App:
    """Answers each request with the next scripted response ("429", "ok", "502", or "down": refused connection)."""

    def __init__(self, *script: str) -> None:
        self.script = list(script)
        self.clock = SimpleNamespace(mono=1000.0, wall=1_795_706_722.0)  # the 429's ratelimit-reset is wall + 60

    def handler(self, request: httpx.Request) -> httpx.Response:
        step = self.script.pop(0)
        if step == "down":
            raise httpx.ConnectError("connection refused", request=request)
        if step == "429":
            return captured_429()
        if step == "502":  # a gateway in front of an app that is down
            return httpx.Response(502, text="Bad Gateway")
        return httpx.Response(200, text=GOOD_PAGE, headers={"content-type": "text/plain"})

    def metrics(self) -> AppMetrics:
        budget = RequestBudget(30, monotonic=lambda: self.clock.mono, wall=lambda: self.clock.wall)
        return AppMetrics(AppHttp("http://app.test", budget, transport=httpx.MockTransport(self.handler)))


async def test_a_429_met_mid_run_is_a_breach_even_when_the_last_reading_succeeded() -> None:
    app = App("429", "ok")
    metrics = app.metrics()
    start = app_reads(metrics)
    first = await metrics.request_stats(100)
    app.clock.mono += 61.0  # past the captured Retry-After (60 s)
    app.clock.wall += 61.0
    last = await metrics.request_stats(100)
    assert first.rate_limited and last.available and not last.rate_limited

    now = app_reads(metrics)
    assert start is not None and now is not None
    finding = rate_limit_finding(last, now.since(start))
    assert finding.status is FindingStatus.BREACH
    assert finding.observed == 1
    assert finding.evidence["too_many"] == 1 and finding.evidence["last_retry_after"] == "60"
    assert "Retry-After 60s" in finding.detail


async def test_reads_refused_because_of_a_429_count_with_the_429_itself() -> None:
    app = App("429")
    metrics = app.metrics()
    start = app_reads(metrics)
    await metrics.request_stats(100)
    app.clock.mono += 10.0
    held = await metrics.request_stats(100)  # not sent: the app's Retry-After is still running
    assert held.rate_limited and "not sent" in held.reason
    now = app_reads(metrics)
    assert start is not None and now is not None
    finding = rate_limit_finding(held, now.since(start))
    assert finding.status is FindingStatus.BREACH and finding.observed == 2
    assert finding.evidence["held_back"] == 1 and "not sent while the app's limit was in force" in finding.detail


async def test_an_earlier_runs_429_is_not_this_runs() -> None:
    app = App("429", "ok")
    metrics = app.metrics()
    await metrics.request_stats(100)  # the previous run, in the same process, on the same client
    app.clock.mono += 61.0
    app.clock.wall += 61.0
    start = app_reads(metrics)
    stats = await metrics.request_stats(100)
    now = app_reads(metrics)
    assert start is not None and now is not None
    finding = rate_limit_finding(stats, now.since(start))
    assert finding.status is FindingStatus.OK and finding.observed == 0
    assert "no 429 in this run's 1 answered reads" in finding.detail


async def finding_after_two_reads(app: App) -> Finding:
    """The run's finding after two metrics reads of ``app`` (whose answers the test chose)."""
    metrics = app.metrics()
    start = app_reads(metrics)
    await metrics.request_stats(100)
    stats = await metrics.request_stats(100)
    now = app_reads(metrics)
    assert start is not None and now is not None
    return rate_limit_finding(stats, now.since(start))


async def test_an_app_that_never_answered_is_unknown_not_ok() -> None:
    finding = await finding_after_two_reads(App("down", "down"))
    assert finding.status is FindingStatus.UNKNOWN
    assert "answered none of this run's reads (2 got no answer)" in finding.detail


async def test_an_app_answered_only_by_its_gateways_5xx_is_unknown_not_ok() -> None:
    finding = await finding_after_two_reads(App("502", "down"))
    assert finding.status is FindingStatus.UNKNOWN
    assert "answered none of this run's reads (1 got no answer; 1 answered 5xx)" in finding.detail


async def test_a_5xx_beside_a_real_answer_still_leaves_the_run_ok_and_says_so() -> None:
    finding = await finding_after_two_reads(App("ok", "502"))
    assert finding.status is FindingStatus.OK
    assert finding.detail == "no 429 in this run's 1 answered reads (1 more got no answer, or a 5xx)"


async def test_without_a_run_tally_only_the_last_reading_speaks_and_an_unread_one_is_unknown() -> None:
    stats = await App("down").metrics().request_stats(100)
    assert rate_limit_finding(stats).status is FindingStatus.UNKNOWN


@dataclass
class FakeIncident:
    """What ``close_rate_limit_finding`` uses of a ``RunningIncident``: providers, the start tally, the report."""

    providers: Any
    app_reads_at_start: Any
    report: Any = field(default_factory=lambda: SimpleNamespace(findings=[]))
    notes: list[tuple[Phase, str, str]] = field(default_factory=list)

    def note(self, phase: Phase, event: str, detail: str = "") -> None:
        self.notes.append((phase, event, detail))

    def add_findings(self, findings: list[Finding]) -> None:
        self.report.findings.extend(findings)
        self.notes.extend((Phase.IDENTIFY, f"finding {f.check}: {f.status.value}", f.detail) for f in findings)


async def test_a_429_met_after_identify_turns_the_runs_ok_finding_into_a_breach_at_close() -> None:
    app = App("ok", "429")
    metrics = app.metrics()
    incident = FakeIncident(providers=SimpleNamespace(metrics=metrics), app_reads_at_start=app_reads(metrics))
    stats = await metrics.request_stats(100)
    incident.add_findings([rate_limit_finding(stats, run_app_reads(incident))])
    assert incident.report.findings[0].status is FindingStatus.OK

    await metrics.request_stats(100)  # the recovery watch meets the app's limit
    close_rate_limit_finding(incident)
    [finding] = incident.report.findings
    assert finding.status is FindingStatus.BREACH and finding.evidence["too_many"] == 1
    assert incident.notes[-1][:2] == (Phase.CLOSE, "finding app_rate_limit over the whole run: breach")


async def test_at_close_a_runbook_without_the_finding_gets_one_only_if_the_app_rate_limited_it() -> None:
    quiet = App("ok").metrics()
    incident = FakeIncident(providers=SimpleNamespace(metrics=quiet), app_reads_at_start=app_reads(quiet))
    await quiet.request_stats(100)
    close_rate_limit_finding(incident)
    assert incident.report.findings == [] and incident.notes == []

    limited = App("429").metrics()
    incident = FakeIncident(providers=SimpleNamespace(metrics=limited), app_reads_at_start=app_reads(limited))
    await limited.request_stats(100)
    close_rate_limit_finding(incident)
    assert [(f.check, f.status) for f in incident.report.findings] == [("app_rate_limit", FindingStatus.BREACH)]
