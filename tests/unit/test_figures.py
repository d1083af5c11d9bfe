"""A finding read as nothing, or judged against no limit, says "unknown" / "no threshold": never Python's None."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from remediation import composition, figures
from remediation.incident import RunningIncident
from remediation.models import Alert, Finding, FindingStatus, IncidentReport, Mode, Outcome, Severity
from remediation.providers.clock import VirtualClock
from remediation.run_report import render_postmortem, render_report
from remediation.settings import Settings

UNREAD = Finding(check="error_rate_5xx", status=FindingStatus.UNKNOWN, threshold=5.0, unit="%", detail="no records")
NO_LIMIT = Finding(check="p95_latency", status=FindingStatus.UNKNOWN, observed=None, threshold=None, unit="ms",
                   detail="no series")
READ = Finding(check="error_rate_5xx", status=FindingStatus.BREACH, observed=12.5, threshold=5.0, unit="%")
CONTEXT = Finding(check="memory_usage", status=FindingStatus.INFO, observed=61.0, threshold=90.0, unit="%")
REPRS = ("None", "threshold None", "None %", "None ms")


def test_figures_say_unknown_and_no_threshold_and_keep_units_on_real_readings() -> None:
    assert (figures.observed(UNREAD), figures.threshold(UNREAD)) == ("unknown", "5 %")
    assert (figures.observed(NO_LIMIT), figures.threshold(NO_LIMIT), figures.against(NO_LIMIT)) == \
        ("unknown", "no threshold", "(no threshold)")
    assert (figures.observed(READ), figures.against(READ)) == ("12.5 %", "vs threshold 5 %")
    assert (figures.threshold(CONTEXT), figures.against(CONTEXT)) == ("-", "(informational)")


def test_the_timeline_line_of_an_unread_finding_has_no_python_none(tmp_path: Path) -> None:
    providers = composition.connect(Settings(app_url="http://127.0.0.1:9", home=tmp_path)).with_(clock=VirtualClock())
    incident = RunningIncident(providers, runbook="high-latency", mode=Mode.AUTO,
                               alert=Alert(name="manual", service="kamkmserve", severity=Severity.SEV2))
    incident.add_findings([UNREAD, NO_LIMIT])
    details = [e.detail for e in incident.report.timeline]
    assert details == ["observed unknown vs threshold 5 %; no records", "observed unknown (no threshold); no series"]


def test_the_report_and_postmortem_markdown_have_no_python_none() -> None:
    report = IncidentReport(incident_id="inc-1", runbook="high-latency", service="kamkmserve", mode=Mode.AUTO,
                            severity=Severity.SEV2, outcome=Outcome.ESCALATED,
                            alert=Alert(name="manual", service="kamkmserve", severity=Severity.SEV2),
                            started_at=datetime(2025, 1, 1, tzinfo=UTC), findings=[UNREAD, NO_LIMIT, CONTEXT])
    for text in (render_report(report), render_postmortem(report)):
        assert not [r for r in REPRS if r in text], text
    assert "| p95_latency | unknown | unknown | no threshold | no series |" in render_report(report)
