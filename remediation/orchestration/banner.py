"""What ``remediate serve`` prints once it is ready: where everything is, in plain text on stdout.

Its addresses are otherwise only in INFO log lines, which the CLI does not show, so people could not find the UI.
:func:`render` is pure (facts in, text out); :func:`facts` gathers them from a running stack.
"""

from __future__ import annotations

import re
import textwrap
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

#: The receiver's alert endpoints (remediation.intake.app).
ALERT_PATHS = ("/alerts/alertmanager", "/alerts/sentry", "/alerts/generic")
WIDTH = 80


@dataclass(frozen=True)
class Deployment:
    name: str
    schedules: tuple[str, ...] = ()


@dataclass(frozen=True)
class Facts:
    receiver_url: str
    api_url: str
    ui_url: str | None
    store_url: str  # as configured: render masks its password
    platform: str | None
    approvers: tuple[tuple[str, str], ...] = ()  # (name, what proves their answers)
    deployments: tuple[Deployment, ...] = ()
    state_file: str | None = None
    alert_paths: tuple[str, ...] = field(default=ALERT_PATHS)
    warnings: tuple[str, ...] = ()  # about the configuration: first, where the eye lands


def mask_password(url: str) -> str:
    """``url`` with the password of its user part replaced by ``***`` (database URLs carry them)."""
    return re.sub(r"^([A-Za-z][\w+.-]*://[^:/@]*):[^@/]*@", r"\1:***@", url)


def render(facts: Facts, width: int = WIDTH) -> str:
    """The banner: each line within ``width`` columns, except a URL, which always stands whole on its own line
    (so it can be copied or clicked)."""
    lines = ["=" * width, "remediate serve is ready", ""]

    def url(label: str, value: str) -> None:
        lines.append(f"{label}:")
        lines.append(f"  {value}")

    def wrapped(label: str, text: str) -> None:
        lines.extend(textwrap.wrap(text, width, initial_indent=f"{label}: ", subsequent_indent="  ",
                                   break_long_words=False, break_on_hyphens=False))

    if facts.warnings:
        lines.append("Configuration warnings:")
        for warning in facts.warnings:
            lines.extend(textwrap.wrap(warning, width, initial_indent="  ", subsequent_indent="    ",
                                       break_long_words=False, break_on_hyphens=False))
    url("Alert receiver (POST alerts here)", facts.receiver_url)
    lines.extend(f"  {facts.receiver_url.rstrip('/')}{path}" for path in facts.alert_paths)
    if facts.ui_url:
        url("Prefect UI", facts.ui_url)
    url("Prefect API", facts.api_url)
    url("Store", mask_password(facts.store_url))
    wrapped("Platform", facts.platform or "none (nothing is changed: runs read, plan, record and escalate)")
    if facts.approvers:
        lines.append("Approvers:")
        for name, proof in facts.approvers:
            lines.extend(textwrap.wrap(f"{name}: {proof}", width, initial_indent="  ", subsequent_indent="    ",
                                       break_long_words=False, break_on_hyphens=False))
    else:
        wrapped("Approvers", "none configured: every step that needs approval is denied at its deadline")
    lines.append(f"Deployments served ({len(facts.deployments)}):")
    for deployment in facts.deployments:
        lines.append(f"  {deployment.name}")
    scheduled = [d for d in facts.deployments if d.schedules]
    lines.append("Schedules:" if scheduled else "Schedules: none")
    for deployment in scheduled:
        for schedule in deployment.schedules:
            lines.extend(textwrap.wrap(f"{deployment.name}: {schedule}", width, initial_indent="  ",
                                       subsequent_indent="    ", break_long_words=False, break_on_hyphens=False))
    if facts.state_file:
        lines.append("Other shells find this server through:")
        lines.append(f"  {facts.state_file}")
    lines.append("=" * width)
    return "\n".join(lines)


def describe_schedule(raw: dict[str, Any]) -> str:
    """One prefect.yaml schedule entry in words: ``cron 0 3 * * 1 (UTC)``, ``every 3600s``; ``(inactive)`` if off."""
    if "cron" in raw:
        text = f"cron {raw['cron']}"
    elif "interval" in raw:
        text = f"every {float(raw['interval']):g}s"
    else:
        text = "schedule"
    if raw.get("timezone"):
        text += f" ({raw['timezone']})"
    if not raw.get("active", True):
        text += " (inactive)"
    return text


def deployments_of(specs: Sequence[dict[str, Any]]) -> tuple[Deployment, ...]:
    """The deployments ``serve_runbooks`` serves (its prefect.yaml specs), with their schedules in words."""
    return tuple(Deployment(str(spec["name"]), tuple(describe_schedule(s) for s in spec.get("schedules") or []))
                 for spec in specs)


def receiver_url(host: str, port: int) -> str:
    shown = f"[{host}]" if ":" in host else host
    return f"http://{shown}:{port}"


def facts(settings: Any, *, host: str, port: int, api_url: str, state_file: str | None) -> Facts:
    """The banner's facts for a stack serving on ``host:port`` against ``api_url``."""
    from deployments.serve import runbook_specs
    from remediation.approver_status import approver_rows
    from remediation.unread_env import unread_variables

    return Facts(receiver_url=receiver_url(host, port), api_url=api_url, ui_url=ui_url(api_url),
                 store_url=settings.resolved_database_url, platform=settings.platform,
                 approvers=tuple((row.name, f"{row.status}, {row.detail}") for row in approver_rows(settings)),
                 deployments=deployments_of(runbook_specs()), state_file=state_file,
                 warnings=tuple(found.describe() for found in unread_variables(settings)))


def ui_url(api_url: str) -> str | None:
    """The Prefect UI for ``api_url``, as Prefect derives it (Cloud's app URL; a server's root)."""
    from prefect.settings import get_current_settings

    derived = get_current_settings().ui_url
    if derived:
        return str(derived)
    return api_url[: -len("/api")] if api_url.endswith("/api") else None
