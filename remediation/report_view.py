"""An IncidentReport's summary in a terminal (``remediate demo`` and ``remediate run``): findings, actions,
verification and outcome, within the terminal's width (remediation.render)."""

from __future__ import annotations

from rich.console import Console

from remediation import figures, render
from remediation.models import IncidentReport


def print_report(report: IncidentReport, console: Console) -> None:
    render.records(console, ("check", "status", "observed", "threshold"),
                   [(f.check, f.status.value, figures.observed(f), figures.threshold(f)) for f in report.findings],
                   title="Findings")
    console.print("")
    render.records(console, (render.Column("action", wraps=True), "phase", "risk", "decision", "approval", "state"),
                   [(a.plan.summary(), a.phase.value, a.risk.value, a.decision.value,
                     f"{a.approval.answer.value} by {a.approval.approver}" if a.approval else "-", a.state.value)
                    for a in report.actions], title="Actions")
    if report.verification:
        v = report.verification
        values = ", ".join(figures.figure(s.value) for s in v.samples)  # unit: see the check
        render.say(console, f"Verification: {v.check}: {'healthy' if v.healthy else 'NOT healthy'} ({values})",
                   hang="  ")
    render.say(console, f"Outcome: {report.outcome.value}")
    if report.escalation:
        render.say(console, f"Escalation: {report.escalation}", hang="  ")
