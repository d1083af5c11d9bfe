"""Runbook parameters: one pydantic model per runbook, shown by the Prefect UI as a flat "Custom run" form.

Every runbook's parameters are a model: the options every runbook shares (:class:`RunOptions`), the ones several
share (:class:`ConfirmOptions`, :class:`VerifyOptions`, :class:`ContinueOptions`, the aliases below) and the runbook's
own knobs, each field written once with its form title and help text::

    class ElevatedErrorRateOptions(RunOptions, ConfirmOptions, VerifyOptions, ContinueOptions):
        threshold_pct: float = Field(1.0, title="5xx threshold (%)", description="Share of 5xx ...")

    @runbook_flow(ElevatedErrorRateOptions, name=RUNBOOK, description="...")
    async def elevated_error_rate(options: ElevatedErrorRateOptions) -> State[dict[str, Any]]: ...

:func:`runbook_flow` gives Prefect a flow whose signature is the model's fields, flat (``service=...,
threshold_pct=...``), and hands the body the validated model. So the parameters Prefect knows are the same flat
names as ever: the form has no nesting, and everything that starts a run with a parameter dict (alert intake, the
event triggers in prefect.yaml, the reconciler's continuation, schedules, ``remediate run -p``) is unchanged, as
are the parameters stored on older runs. A flow parameter typed as a model would instead be one nested object in
the form and in every one of those dicts.

How Prefect 3.9.1 builds the form (``prefect.utilities.callables.parameter_schema``, used by ``serve`` and
``prefect deploy`` alike): one pydantic field per signature parameter, whose ``title`` is the parameter's name and
whose ``description`` comes from the docstring's ``Args:``; a ``Field(title=..., description=...)`` in the
annotation is overridden by them. What survives is ``json_schema_extra`` in ``Annotated`` metadata (:func:`form`):
pydantic merges it into the field's schema last. The flat signature carries each field's title and description
that way, and plain defaults.

``tests/unit/test_runbook_forms.py`` checks every parameter of every runbook for its title, description and default.
Optional parameters (``X | None = None``, "use the configured default") render as two tabs, the type and "None";
their descriptions say what None means.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable
from typing import Annotated, Any, ClassVar, TypeVar

from pydantic import BaseModel, ConfigDict, Field

from remediation.models import Mode, Severity

Options = TypeVar("Options", bound="RunOptions")
R = TypeVar("R")


def form(title: str, description: str) -> Any:
    """Annotation metadata giving a flow parameter its form title and help text (see the module docstring)."""
    return Field(json_schema_extra={"title": title, "description": description})


RunSeverity = Annotated[Severity, Field(title="Incident severity", description=(
    "Sets the escalation's acknowledgement SLA: SEV1 5 min, SEV2 10 min, SEV3/SEV4 30 min."))]


class _Options(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class RunOptions(_Options):
    """What every runbook takes: the service, how far the run may act, and the incident it belongs to."""

    HEAD: ClassVar[tuple[str, ...]] = ("service", "mode", "severity")  # first in the form
    TAIL: ClassVar[tuple[str, ...]] = ("approval_timeout_s", "alert_name", "incident_id", "lock_timeout_s",
                                       "continue_at_recover")  # last in the form: set by intake or the reconciler

    service: str = Field("kamkmserve", title="Service", description=(
        "The service to remediate. One run per service acts at a time; others wait (see Lock wait)."))
    mode: Mode | None = Field(None, title="Mode", description=(
        "dry_run: plan and record, change nothing. approve: every change waits for a human. auto: reversible "
        "steps run within policy, destructive ones still ask. None: the REMEDIATE_MODE setting (default approve)."))
    severity: RunSeverity = Severity.SEV2  # a runbook with another default redeclares it (with this alias)
    approval_timeout_s: int | None = Field(None, title="Approval timeout (s)", description=(
        "How long a step waits for an approver; no answer counts as deny. None: the "
        "REMEDIATE_APPROVAL_TIMEOUT_S setting (default 900)."))
    alert_name: str = Field("manual", title="Alert name", description=(
        "The alert that started the run; 'manual' for a run started by hand."))
    incident_id: str | None = Field(None, title="Incident id", description=(
        "An incident opened by alert intake that this run adopts. None (the usual for a manual run): a new "
        "incident."))
    lock_timeout_s: float | None = Field(1800.0, title="Lock wait (s)", description=(
        "While another run remediates the same service, wait this long for it, then escalate without acting. "
        "None: wait indefinitely."))


class ConfirmOptions(_Options):
    """The identify phase's confirming readings (runbooks that sample a signal before acting)."""

    confirm_samples: int | None = Field(None, title="Confirming readings", description=(
        "Readings that must all breach before the run acts. None: 2 for a run started by hand, 1 when an alert "
        "started it (the alert rule already required persistence)."))
    sample_interval_s: float = Field(5.0, title="Seconds between readings", description=(
        "Pause between the confirming readings of the identify phase."))


class VerifyOptions(_Options):
    """The recover phase's budget (runbooks that verify a fix with healthy readings in a row)."""

    verify_consecutive: int | None = Field(None, title="Healthy readings to recover", description=(
        "Healthy readings in a row that prove the fix held. None: the REMEDIATE_VERIFY_CONSECUTIVE setting "
        "(default 3)."))
    verify_interval_s: float | None = Field(None, title="Seconds between verification readings", description=(
        "Pause between the readings that verify recovery. None: the REMEDIATE_VERIFY_INTERVAL_S setting "
        "(default 15)."))
    verify_deadline_s: float | None = Field(None, title="Verification deadline (s)", description=(
        "Time the fix has to prove itself; after it the fix counts as failed and the run escalates. None: the "
        "REMEDIATE_VERIFY_DEADLINE_S setting (default 600)."))


class ContinueOptions(_Options):
    """Runbooks the reconciler can continue at recover after a run died (remediation.takeover)."""

    continue_at_recover: bool = Field(False, title="Continue at recover", description=(
        "Set by the reconciler when a run died after its fix was applied: this run adopts the incident (Incident "
        "id), skips identify, contain and remediate, verifies again and undoes the containment. Leave off when "
        "starting a run by hand."))


# Fields some runbooks share (a runbook with its own meaning for the name declares its own field).
MinRecords = Annotated[int, Field(title="Minimum request records", description=(
    "Fewer request records than this in a reading: the signal is unknown, and the run escalates without changing "
    "anything."))]
WindowRecords = Annotated[int | None, Field(title="Records per reading", description=(
    "How many of the most recent request records one reading uses. None: the REMEDIATE_METRICS_WINDOW_RECORDS "
    "setting (default 100)."))]


def form_order(options: type[RunOptions]) -> list[str]:
    """The form's order: service, mode and severity; the runbook's own knobs; the shared readings and verification;
    then what intake and the reconciler set (:attr:`RunOptions.TAIL`)."""
    fields = options.model_fields
    order = [name for name in RunOptions.HEAD if name in fields]
    for klass in options.__mro__:  # the runbook's class first, then its bases in the order it names them
        for name in vars(klass).get("__annotations__", {}):
            if name in fields and name not in order and name not in RunOptions.TAIL:
                order.append(name)
    return order + [name for name in RunOptions.TAIL if name in fields]


def flat_signature(options: type[RunOptions], returns: Any = inspect.Signature.empty) -> inspect.Signature:
    """The flow signature Prefect sees: one keyword parameter per field, carrying its form title and help text."""
    parameters = []
    for name in form_order(options):
        field = options.model_fields[name]
        if not (field.title and field.description):
            raise TypeError(f"{options.__name__}.{name} needs a title and a description: they are its form text")
        annotation: Any = Annotated[(field.annotation, *field.metadata, form(field.title, field.description))]
        parameters.append(inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, annotation=annotation,
                                            default=field.get_default(call_default_factory=True)))
    return inspect.Signature(parameters, return_annotation=returns)


def runbook_flow(options: type[Options], *, name: str, description: str
                 ) -> Callable[[Callable[[Options], Awaitable[R]]], Any]:
    """``@flow`` for a runbook whose body takes one ``options`` model; Prefect sees the fields as flat parameters.

    Prefect validates and coerces each parameter against the flat signature (as for any flow), the body gets
    ``options.model_validate(parameters)``. The decorated name is a Prefect ``Flow``, called with keyword
    parameters (``await elevated_error_rate(service="kamkmserve", threshold_pct=2.0)``)."""
    from prefect import flow

    def decorate(body: Callable[[Options], Awaitable[R]]) -> Any:
        async def run(**parameters: Any) -> R:
            return await body(options.model_validate(parameters))

        for attribute in ("__module__", "__name__", "__qualname__", "__doc__"):
            setattr(run, attribute, getattr(body, attribute))
        run.__signature__ = flat_signature(  # type: ignore[attr-defined]
            options, inspect.signature(body).return_annotation)
        run.options = options  # type: ignore[attr-defined]
        return flow(name=name, description=description)(run)

    return decorate
