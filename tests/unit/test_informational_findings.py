"""Informational readings have their own status: never ``breach``, never ``ok``, and reported as context."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from remediation.models import Alert, Finding, FindingStatus, IncidentReport, Mode, Outcome, Severity
from remediation.providers.budget import RequestBudget
from remediation.providers.http import AppHttp
from remediation.providers.metrics import AppMetrics
from remediation.providers.platform import ErrorIssue
from remediation.replay import ReplayServer
from remediation.run_report import render_postmortem, render_report
from tasks.auth_access.identify import auth_issues_finding
from tasks.common.detect import error_issues_finding, health_finding

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "kamkmserve"


@pytest.fixture
def idle_app_at_91_percent_heap() -> Iterator[ReplayServer]:
    # Captured from the real app after a few uploads, otherwise idle: status "critical" on the heap ratio alone.
    with ReplayServer(FIXTURES, pattern="default-2h-format-health-after-uploads.http") as app:
        yield app


async def test_the_real_apps_critical_heap_ratio_is_info_not_a_breach(
        idle_app_at_91_percent_heap: ReplayServer) -> None:
    providers: Any = SimpleNamespace(metrics=AppMetrics(AppHttp(idle_app_at_91_percent_heap.url, RequestBudget(100))))
    finding = await health_finding.fn(providers)
    assert finding.check == "memory_usage"
    assert finding.status is FindingStatus.INFO
    assert finding.observed == 91.0
    assert "informational" in finding.detail and "'critical'" in finding.detail
    assert finding.evidence["over_app_critical"] is True  # what the app's own rule said, kept out of the status


async def test_unresolved_error_tracker_issues_are_context_not_a_verdict() -> None:
    issue = ErrorIssue(id="1", title="ClerkAPIResponseError: Unauthorized", culprit="auth/roles", count=4)
    errors = SimpleNamespace(issues=lambda: _resolved([issue]))
    providers: Any = SimpleNamespace(errors=errors)
    for finding in (await error_issues_finding.fn(providers), await auth_issues_finding.fn(providers)):
        assert finding.status is FindingStatus.INFO and finding.observed == 1, finding


async def _resolved(issues: list[ErrorIssue]) -> list[ErrorIssue]:
    return issues


def test_an_informational_copy_keeps_the_would_be_verdict_in_evidence_and_an_unreadable_one_stays_unknown() -> None:
    breach = Finding(check="error_rate_5xx", status=FindingStatus.BREACH, observed=7.0, threshold=1.0, unit="%",
                     detail="7 of the last 100 requests answered 5xx")
    info = breach.informational("context: this runbook's verdict is the database signals")
    assert info.status is FindingStatus.INFO and info.evidence["against_threshold"] == "above"
    assert info.detail.endswith("(context: this runbook's verdict is the database signals)")
    ok = Finding(check="error_rate_5xx", status=FindingStatus.OK, observed=0.0).informational()
    assert ok.status is FindingStatus.INFO and ok.evidence["against_threshold"] == "within"
    unknown = Finding(check="error_rate_5xx", status=FindingStatus.UNKNOWN, detail="no request records")
    assert unknown.informational() is unknown


def test_reports_show_info_readings_as_context_not_as_impact_and_without_a_threshold_verdict() -> None:
    report = IncidentReport(
        incident_id="inc-1", runbook="elevated-error-rate", service="kamkmserve", mode=Mode.AUTO,
        severity=Severity.SEV2, outcome=Outcome.ESCALATED,
        alert=Alert(name="manual", service="kamkmserve", severity=Severity.SEV2),
        findings=[Finding(check="error_rate_5xx", status=FindingStatus.UNKNOWN, detail="no request records"),
                  Finding(check="memory_usage", status=FindingStatus.INFO, observed=91.0, threshold=90.0, unit="%",
                          detail="heap ratio only; informational")])
    postmortem = render_postmortem(report)
    impact = postmortem.split("## Impact")[1].split("## ")[0]
    assert "error_rate_5xx" in impact and "memory_usage" not in impact
    context = postmortem.split("## Context")[1].split("## What")[0]
    assert "memory_usage: 91 %" in context and "breach" not in postmortem
    row = next(line for line in render_report(report).splitlines() if line.startswith("| memory_usage"))
    assert "| info |" in row and "- (informational)" in row and "90.0" not in row
    assert report.summary_json()["findings"][1]["status"] == "info"
