"""Who can approve on this server, and what proves it: for `remediate approvers list` and `remediate check`."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from remediation import approvers
from remediation.settings import Settings


@dataclass(frozen=True)
class ApproverRow:
    name: str
    status: str  # "ok" | "sim only" | "refused" | "failing"
    detail: str


def approver_rows(settings: Settings) -> list[ApproverRow]:
    rows = []
    for name in settings.approvers:
        factor = settings.approver_factors.get(name, approvers.ApproverFactor())
        slack = f"; Slack user {factor.slack_user}" if factor.slack_user else ""
        ref = factor.totp_ref(name)
        if ref is not None:
            secret, why_not = approvers.totp_secret(name, factor)
            rows.append(ApproverRow(name, "ok", f"TOTP ({ref.describe()}){slack}") if secret else
                        ApproverRow(name, "failing", f"TOTP secret unreadable: {why_not}{slack}"))
        elif factor.slack_user:
            rows.append(ApproverRow(name, "ok", f"Slack user {factor.slack_user} only (no TOTP: the form is refused)"))
        elif settings.platform == "sim":
            rows.append(ApproverRow(name, "sim only", "no second factor: believed on the simulator platform only"))
        else:
            rows.append(ApproverRow(name, "refused", f"no second factor: every answer is refused; enrol with "
                                                     f"`remediate approvers enroll {name}`"))
    return rows


def summary(settings: Settings) -> tuple[Literal["ok", "degraded", "failing", "absent"], str]:
    """(check status, one line) for the approvers as a whole."""
    rows = approver_rows(settings)
    if not rows:
        return "absent", "no approver configured (approvers or [approvers.NAME]): every step that needs approval " \
                         "is denied at its deadline"
    able = [r for r in rows if r.status in ("ok", "sim only")]
    if not able:
        return "failing", "no approver can prove an answer: every step that needs approval is denied at its deadline"
    problems = [f"{r.name}: {r.detail}" for r in rows if r.status in ("failing", "refused")]
    sim_only = [r.name for r in rows if r.status == "sim only"]
    parts = [f"{len(able)} of {len(rows)} can approve"]
    if sim_only:
        parts.append(f"without a second factor (simulator platform only): {', '.join(sim_only)}")
    parts += problems
    return ("degraded" if problems or sim_only else "ok"), "; ".join(parts)
