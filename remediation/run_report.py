"""Close: the report, the timeline and a postmortem draft, as Prefect artifacts and in the store.

Part of the run skeleton (``remediation.run.finish`` renders the postmortem and publishes the report); its one
Prefect task, ``close: publish report``, is a ``remediation.steps.step`` like the runbooks' own.
"""

from __future__ import annotations

import re

from prefect.artifacts import acreate_markdown_artifact, acreate_table_artifact
from prefect.context import FlowRunContext

from remediation import figures
from remediation.models import FindingStatus, IncidentReport
from remediation.steps import step


def artifact_key(incident_id: str, suffix: str) -> str:
    return re.sub(r"[^a-z0-9-]+", "-", f"{incident_id}-{suffix}".lower()).strip("-")


def render_report(report: IncidentReport) -> str:
    lines = [
        f"# {report.runbook} on `{report.service}`: **{report.outcome.value}**",
        "",
        f"Incident `{report.incident_id}` · mode `{report.mode.value}` · {report.severity.value.upper()}",
        "",
        "## Findings",
        "| check | status | observed | threshold | detail |",
        "|---|---|---|---|---|",
        *[f"| {f.check} | {f.status.value} | {figures.observed(f)} | "
          f"{'- (informational)' if f.status is FindingStatus.INFO else figures.threshold(f)} | {f.detail} |"
          for f in report.findings],
        "",
        "## Actions",
        "| phase | action | risk | decision | approval | state | undo |",
        "|---|---|---|---|---|---|---|",
        *[f"| {a.phase.value} | {a.plan.summary()} | {a.risk.value} | {a.decision.value} | "
          f"{(a.approval.answer.value + ' by ' + a.approval.approver) if a.approval else '-'} | {a.state.value} | "
          f"{u.summary() if (u := a.plan.undo()) else '-'} |" for a in report.actions],
        "",
        "## Evidence",
        *[f"- **{e.source}**: {e.summary}" for e in report.evidence],
    ]
    if report.verification:
        v = report.verification
        lines += ["", "## Verification", f"{v.check}: **{'healthy' if v.healthy else 'not healthy'}** "
                  f"({len(v.samples)} samples: {', '.join(figures.figure(s.value) for s in v.samples)}) {v.detail}"]
    if report.escalation:
        lines += ["", "## Escalation", report.escalation]
    return "\n".join(lines)


def render_postmortem(report: IncidentReport) -> str:
    applied = [a for a in report.actions if a.applied]
    verdicts = [f for f in report.findings if f.status is not FindingStatus.INFO]
    context = [f for f in report.findings if f.status is FindingStatus.INFO]
    start = report.timeline[0].at if report.timeline else report.started_at
    end = report.finished_at or (report.timeline[-1].at if report.timeline else report.started_at)
    return "\n".join([
        f"# Postmortem draft: {report.runbook} on {report.service} ({report.incident_id})",
        "",
        f"- Severity: {report.severity.value.upper()}; outcome: {report.outcome.value}",
        f"- Window: {start:%Y-%m-%d %H:%M:%S}Z to {end:%H:%M:%S}Z",
        "",
        "## Impact",
        *([f"- {f.check}: {figures.observed(f)} ({f.status.value}) {f.detail}" for f in verdicts]
          or ["- no finding"]),
        "",
        *(["## Context (informational readings, not evidence of impact or of health)",
           *[f"- {f.check}: {figures.observed(f)} {f.detail}" for f in context], ""] if context else []),
        "## What the automation did",
        *([f"- {a.plan.summary()} ({a.risk.value}), "
           f"{'approved by ' + a.approval.approver if a.approval else 'policy: ' + a.decision.value}"
           for a in applied] or ["- nothing was applied"]),
        "",
        "## Timeline",
        *[f"- {t.at:%H:%M:%S}Z [{t.phase.value}] {t.event}" for t in report.timeline],
        "",
        "## Root cause (to be completed by a human)",
        *[f"- {e.source}: {e.summary}" for e in report.evidence],
        "",
        "## Follow-ups",
        "- [ ] Confirm the root cause and the fix in the release that was rolled back (if any)",
        "- [ ] Review alert thresholds and the runbook's verification settings",
    ])


@step(name="close: publish report")
async def publish_report(report: IncidentReport) -> None:
    """Artifacts only exist inside a run; called outside one (unit tests) it does nothing."""
    if FlowRunContext.get() is None:
        return
    await acreate_markdown_artifact(markdown=render_report(report), key=artifact_key(report.incident_id, "report"),
                                    description=f"{report.runbook} report")
    await acreate_table_artifact(
        table=[{"at": t.at.isoformat(), "phase": t.phase.value, "event": t.event, "detail": t.detail}
               for t in report.timeline],
        key=artifact_key(report.incident_id, "timeline"), description="incident timeline")
    await acreate_markdown_artifact(markdown=report.postmortem, key=artifact_key(report.incident_id, "postmortem"),
                                    description="postmortem draft")
