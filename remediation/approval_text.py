"""What a person reads before answering: the same facts in the Prefect UI's Resume dialog and in the inbox."""

from __future__ import annotations

from collections.abc import Sequence

from remediation.settings import Settings
from remediation.store import PendingStep


def approval_description(step: PendingStep, reasons: Sequence[str], settings: Settings, timeout_s: float) -> str:
    """Markdown shown above the Resume form: what, why with the figures, undo, who may answer and how."""
    names = settings.approvers
    lines = [
        f"### {step.runbook}: approve **{step.summary}** on `{step.service}`?",
        "",
        f"- Incident `{step.incident_id}`, severity **{step.severity.upper()}**, phase {step.phase}",
        f"- Risk: **{step.risk}**" + (f" ({'; '.join(reasons)})" if reasons else ""),
        f"- Why: {step.why}",
        *[f"- Evidence: {line}" for line in step.evidence],
        f"- Undo: {step.undo}",
        f"- Approvals needed: **{step.needed}** distinct approver{'s' if step.needed > 1 else ''}",
        f"- Approvers: {', '.join(names) or '(none configured: nobody can approve)'}",
        f"- Unanswered after {timeout_s:g}s counts as **deny**.",
    ]
    if step.statement:  # database repairs: show exactly what will be executed
        lines += ["", "Exactly this will run:", "", "```sql", step.statement, "```"]
    lines += ["", "Answer below: choose **approve** or **deny** under **Decision**, type your name, the "
              "6-digit **Code** from your authenticator app and a reason, leave **Step** as it is, then **Resume**. "
              f"From a shell: `remediate approve {step.flow_run_id or '<flow run id>'} --as <name> --code <code> "
              "[--deny] --reason <text>`."]
    return "\n".join(lines)
