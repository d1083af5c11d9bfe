"""Titles and help text for runbook parameters, as the Prefect UI's "Custom run" form shows them.

How Prefect 3.9.1 builds a deployment's parameter form (``prefect.utilities.callables.parameter_schema``, used by
``serve`` and ``prefect deploy`` alike): one pydantic field per flow parameter, whose ``title`` is always the
parameter's name and whose ``description`` comes from the docstring's Google ``Args:`` section. Two ways to say
more were tried and rejected:

* ``param: float = Field(5.0, description=...)`` puts the help text in the form, but Prefect hands the
  ``FieldInfo`` itself to the flow when a deployment run omits the parameter (quick run, triggers, intake):
  the flow would get ``FieldInfo(...)`` instead of ``5.0``.
* ``Annotated[float, Field(title=..., description=...)]``: Prefect's own field (``title=<name>``,
  ``description=<docstring or None>``) overrides both.

What survives is ``json_schema_extra`` in ``Annotated`` metadata: pydantic merges it into the field's schema
last, so its ``title`` and ``description`` win, defaults stay plain values and nothing about a call changes.
Hence every runbook parameter is annotated with :func:`form` (or one of the shared aliases below)::

    threshold_pct: Annotated[float, form("5xx threshold (%)", "Share of 5xx ... ")] = 1.0
    service: Service = "kamkmserve"

``tests/unit/test_runbook_forms.py`` checks every parameter of every catalogued runbook for a human title and a
description, and that ``mode`` offers exactly the three modes.

Optional parameters (``X | None = None``, "use the configured default") render as two tabs, the type and "None";
their descriptions say what None means.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import Field

from remediation.models import Mode, Severity


def form(title: str, description: str) -> Any:
    """Annotation metadata giving a flow parameter its form title and help text (see the module docstring)."""
    return Field(json_schema_extra={"title": title, "description": description})


# Parameters every runbook shares. Per-runbook parameters use ``Annotated[T, form(...)]`` in the flow itself.
Service = Annotated[str, form(
    "Service", "The service to remediate. One run per service acts at a time; others wait (see Lock wait).")]
RunMode = Annotated[Mode | None, form(
    "Mode", "dry_run: plan and record, change nothing. approve: every change waits for a human. auto: reversible "
    "steps run within policy, destructive ones still ask. None: the REMEDIATE_MODE setting (default approve).")]
RunSeverity = Annotated[Severity, form(
    "Incident severity", "Sets the escalation's acknowledgement SLA: SEV1 5 min, SEV2 10 min, SEV3/SEV4 30 min.")]
MinRecords = Annotated[int, form(
    "Minimum request records", "Fewer request records than this in a reading: the signal is unknown, and the run "
    "escalates without changing anything.")]
WindowRecords = Annotated[int | None, form(
    "Records per reading", "How many of the most recent request records one reading uses. None: the "
    "REMEDIATE_METRICS_WINDOW_RECORDS setting (default 100).")]
ConfirmSamples = Annotated[int | None, form(
    "Confirming readings", "Readings that must all breach before the run acts. None: 2 for a run started by hand, "
    "1 when an alert started it (the alert rule already required persistence).")]
SampleInterval = Annotated[float, form(
    "Seconds between readings", "Pause between the confirming readings of the identify phase.")]
DeployLookback = Annotated[float, form(
    "Change lookback (s)", "A release promoted or a change made within this many seconds before now is treated "
    "as the suspected cause.")]
VerifyConsecutive = Annotated[int | None, form(
    "Healthy readings to recover", "Healthy readings in a row that prove the fix held. None: the "
    "REMEDIATE_VERIFY_CONSECUTIVE setting (default 3).")]
VerifyInterval = Annotated[float | None, form(
    "Seconds between verification readings", "Pause between the readings that verify recovery. None: the "
    "REMEDIATE_VERIFY_INTERVAL_S setting (default 15).")]
VerifyDeadline = Annotated[float | None, form(
    "Verification deadline (s)", "Time the fix has to prove itself; after it the fix counts as failed and the run "
    "escalates. None: the REMEDIATE_VERIFY_DEADLINE_S setting (default 600).")]
ApprovalTimeout = Annotated[int | None, form(
    "Approval timeout (s)", "How long a step waits for an approver; no answer counts as deny. None: the "
    "REMEDIATE_APPROVAL_TIMEOUT_S setting (default 900).")]
AlertName = Annotated[str, form(
    "Alert name", "The alert that started the run; 'manual' for a run started by hand.")]
IncidentId = Annotated[str | None, form(
    "Incident id", "An incident opened by alert intake that this run adopts. None (the usual for a manual run): "
    "a new incident.")]
LockTimeout = Annotated[float | None, form(
    "Lock wait (s)", "While another run remediates the same service, wait this long for it, then escalate "
    "without acting. None: wait indefinitely.")]
ContinueAtRecover = Annotated[bool, form(
    "Continue at recover", "Set by the reconciler when a run died after its fix was applied: this run adopts the "
    "incident (Incident id), skips identify, contain and remediate, verifies again and undoes the containment. "
    "Leave off when starting a run by hand.")]
