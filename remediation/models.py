"""The remediation domain as typed data.

Everything a runbook decides, does or observes is one of these models, so that the same objects are
written to the store, rendered as Prefect artifacts and printed by the CLI. Plans are a discriminated
union on ``kind``: a plan knows its target, its risk class and how to undo it.
"""

from __future__ import annotations

import hashlib
import uuid
from datetime import UTC, datetime
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from remediation.sqlindex import CreateIndex


def utcnow() -> datetime:
    return datetime.now(UTC)


def new_id(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


class Mode(StrEnum):
    """How far a run may act on its own."""

    DRY_RUN = "dry_run"  # plan, evaluate and record; touch nothing
    APPROVE = "approve"  # every mutation waits for a human
    AUTO = "auto"  # reversible mutations run within policy; destructive ones still ask


class Risk(StrEnum):
    OBSERVE = "observe"
    REVERSIBLE = "reversible"
    DESTRUCTIVE = "destructive"


class Severity(StrEnum):
    SEV1 = "sev1"
    SEV2 = "sev2"
    SEV3 = "sev3"
    SEV4 = "sev4"


class FindingStatus(StrEnum):
    BREACH = "breach"
    OK = "ok"
    UNKNOWN = "unknown"  # no data is never healthy
    # Context, not a verdict (the app's heap ratio, error-tracker issues, a side runbook's 5xx share): it can neither
    # trigger an action nor stand as evidence that all is well, so it must not wear "breach" or "ok".
    INFO = "info"


class Outcome(StrEnum):
    RECOVERED = "recovered"
    STOOD_DOWN = "stood_down"
    ESCALATED = "escalated"
    DENIED = "denied"
    DRY_RUN = "dry_run"


#: A finished run's Prefect state name per outcome (always of type Completed): what the UI's run list shows and the
#: event Prefect emits (``prefect.flow-run.Escalated``) that automations can match. CamelCase like Prefect's own.
OUTCOME_STATE_NAMES = {Outcome.RECOVERED: "Recovered", Outcome.STOOD_DOWN: "StoodDown", Outcome.DRY_RUN: "DryRun",
                       Outcome.ESCALATED: "Escalated", Outcome.DENIED: "Denied"}


class Phase(StrEnum):
    IDENTIFY = "identify"
    CONTAIN = "contain"
    INVESTIGATE = "investigate"
    REMEDIATE = "remediate"
    RECOVER = "recover"
    CLOSE = "close"


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Alert(_Frozen):
    """What started the run: an alert from intake, or the parameters of a manual run."""

    name: str
    service: str
    severity: Severity = Severity.SEV3
    source: str = "manual"
    fingerprint: str | None = None
    labels: dict[str, str] = Field(default_factory=dict)
    annotations: dict[str, str] = Field(default_factory=dict)
    starts_at: datetime | None = None


class Finding(_Frozen):
    """One detection check's verdict. ``observed`` is None when the signal could not be read."""

    check: str
    status: FindingStatus
    observed: float | str | None = None
    threshold: float | str | None = None
    unit: str = ""
    detail: str = ""
    evidence: dict[str, Any] = Field(default_factory=dict)

    def informational(self, why: str = "") -> Finding:
        """This reading as context only: what a verdict would have said stays in ``evidence`` (``against_threshold``)
        for a human, never in ``status``. An unreadable one stays ``unknown``: that is still the truth about it."""
        if self.status is FindingStatus.UNKNOWN:
            return self
        said = {FindingStatus.BREACH: "above", FindingStatus.OK: "within"}.get(self.status)
        evidence = {**self.evidence, **({"against_threshold": said} if said else {})}
        detail = f"{self.detail} ({why})" if why else self.detail
        return self.model_copy(update={"status": FindingStatus.INFO, "evidence": evidence, "detail": detail})


# ---------------------------------------------------------------------------------------------------------
# Plans: every mutation is one of these. ``undo`` returns the plan that reverts it (None: not revertible).


class _PlanBase(_Frozen):
    service: str
    reason: str = ""

    @property
    def risk(self) -> Risk:
        raise NotImplementedError

    @property
    def target(self) -> str:
        raise NotImplementedError

    def undo(self) -> Plan | None:
        return None

    def summary(self) -> str:
        return f"{self.kind} {self.target}"  # type: ignore[attr-defined]


class EnableMaintenance(_PlanBase):
    kind: Literal["enable_maintenance"] = "enable_maintenance"
    path_prefixes: tuple[str, ...]

    @property
    def risk(self) -> Risk:
        # Maintenance on "/" takes the whole site down: that is not a containment a robot takes alone.
        return Risk.DESTRUCTIVE if "/" in self.path_prefixes else Risk.REVERSIBLE

    @property
    def target(self) -> str:
        return ",".join(self.path_prefixes)

    def undo(self) -> Plan:
        return DisableMaintenance(service=self.service, path_prefixes=self.path_prefixes, reason="undo")


class DisableMaintenance(_PlanBase):
    kind: Literal["disable_maintenance"] = "disable_maintenance"
    path_prefixes: tuple[str, ...]

    @property
    def risk(self) -> Risk:
        return Risk.REVERSIBLE

    @property
    def target(self) -> str:
        return ",".join(self.path_prefixes)

    def undo(self) -> Plan:
        return EnableMaintenance(service=self.service, path_prefixes=self.path_prefixes, reason="undo")


class Rollback(_PlanBase):
    """Promote an earlier release. Destructive: it throws away whatever the current release fixed."""

    kind: Literal["rollback"] = "rollback"
    from_release: str
    to_release: str
    to_version: str = ""
    from_version: str = ""

    @property
    def risk(self) -> Risk:
        return Risk.DESTRUCTIVE

    @property
    def target(self) -> str:
        return f"{self.from_version or self.from_release} -> {self.to_version or self.to_release}"

    def undo(self) -> Plan:
        return Rollback(
            service=self.service,
            from_release=self.to_release,
            to_release=self.from_release,
            from_version=self.to_version,
            to_version=self.from_version,
            reason="undo",
        )


class SetFeatureFlag(_PlanBase):
    kind: Literal["set_feature_flag"] = "set_feature_flag"
    flag: str
    enabled: bool
    previous: bool | None = None

    @property
    def risk(self) -> Risk:
        return Risk.REVERSIBLE

    @property
    def target(self) -> str:
        return f"{self.flag}={'on' if self.enabled else 'off'}"

    def undo(self) -> Plan | None:
        if self.previous is None:
            return None
        return SetFeatureFlag(
            service=self.service, flag=self.flag, enabled=self.previous, previous=self.enabled, reason="undo"
        )


class ScaleUp(_PlanBase):
    """More replicas for a while. ``ttl_s`` is when the run (or a human) should scale back down."""

    kind: Literal["scale_up"] = "scale_up"
    from_replicas: int = Field(ge=0)
    to_replicas: int = Field(ge=1)
    ttl_s: int = Field(default=3600, ge=1)

    @property
    def risk(self) -> Risk:
        return Risk.REVERSIBLE

    @property
    def target(self) -> str:
        return f"{self.service} {self.from_replicas}->{self.to_replicas} replicas for {self.ttl_s}s"

    def undo(self) -> Plan:
        return ScaleDown(service=self.service, from_replicas=self.to_replicas,
                         to_replicas=max(self.from_replicas, 1), reason="undo")


class ScaleDown(_PlanBase):
    """Back to the earlier replica count (the undo of a scale-up). Never below one replica."""

    kind: Literal["scale_down"] = "scale_down"
    from_replicas: int = Field(ge=1)
    to_replicas: int = Field(ge=1)

    @property
    def risk(self) -> Risk:
        return Risk.REVERSIBLE

    @property
    def target(self) -> str:
        return f"{self.service} {self.from_replicas}->{self.to_replicas} replicas"

    def undo(self) -> Plan:
        return ScaleUp(service=self.service, from_replicas=self.to_replicas, to_replicas=self.from_replicas,
                       reason="undo")


class PauseJobs(_PlanBase):
    """Stop background job pools (workers to 0). ``previous`` remembers each pool's worker count for the undo."""

    kind: Literal["pause_jobs"] = "pause_jobs"
    previous: dict[str, int] = Field(min_length=1)

    @property
    def risk(self) -> Risk:
        return Risk.REVERSIBLE

    @property
    def target(self) -> str:
        return ",".join(sorted(self.previous))

    def undo(self) -> Plan:
        return ResumeJobs(service=self.service, workers=dict(self.previous), reason="undo")


class ResumeJobs(_PlanBase):
    """Give job pools back the worker counts they had before they were paused."""

    kind: Literal["resume_jobs"] = "resume_jobs"
    workers: dict[str, int] = Field(min_length=1)

    @property
    def risk(self) -> Risk:
        return Risk.REVERSIBLE

    @property
    def target(self) -> str:
        return ",".join(f"{name}={count}" for name, count in sorted(self.workers.items()))

    def undo(self) -> Plan:
        return PauseJobs(service=self.service, previous=dict(self.workers), reason="undo")


class TerminateBackend(_PlanBase):
    """``pg_terminate_backend(pid)``: kills the session and rolls back its open transaction. Not undoable."""

    kind: Literal["terminate_backend"] = "terminate_backend"
    pid: int = Field(gt=0)
    query: str = ""
    application: str | None = None
    blocked_sessions: int = Field(default=0, ge=0)
    held_for_s: float | None = None

    @property
    def risk(self) -> Risk:
        return Risk.DESTRUCTIVE

    @property
    def target(self) -> str:
        return f"backend {self.pid}" + (f" ({self.application})" if self.application else "")

    @property
    def statement(self) -> str:
        return f"SELECT pg_terminate_backend({self.pid})"


class CreateIndexPlan(_PlanBase):
    """``CREATE INDEX CONCURRENTLY``: no write lock, but real load on a big table. Undo: ``DROP INDEX
    CONCURRENTLY`` by a human, once the index proves useless (it is not done automatically)."""

    kind: Literal["create_index"] = "create_index"
    table: str
    columns: tuple[str, ...] = Field(min_length=1)
    schema_name: str = "public"
    index_name: str = ""

    @model_validator(mode="after")
    def _identifiers_are_plain(self) -> CreateIndexPlan:
        self.index()  # a name that could not be quoted safely never becomes a plan
        return self

    @property
    def risk(self) -> Risk:
        return Risk.DESTRUCTIVE

    @property
    def target(self) -> str:
        return f"{self.schema_name}.{self.table}({', '.join(self.columns)})"

    def index(self) -> CreateIndex:
        """The validated :class:`remediation.sqlindex.CreateIndex` (raises ValueError on bad names)."""
        return CreateIndex(table=self.table, columns=self.columns, name=self.index_name, schema=self.schema_name)

    @property
    def statement(self) -> str:
        return str(self.index().sql)


class BlockActor(_PlanBase):
    """Block an IP, user or session at the edge for ``ttl_s``. Policy refuses never-block ranges and broad nets."""

    kind: Literal["block_actor"] = "block_actor"
    actor_kind: Literal["ip", "user", "session"]
    value: str = Field(min_length=1)
    ttl_s: int = Field(ge=60)
    evidence_count: int = Field(default=0, ge=0)

    @property
    def risk(self) -> Risk:
        return Risk.REVERSIBLE

    @property
    def target(self) -> str:
        return f"{self.actor_kind} {self.value} for {self.ttl_s}s"

    def undo(self) -> Plan:
        return UnblockActor(service=self.service, actor_kind=self.actor_kind, value=self.value, reason="undo")


class UnblockActor(_PlanBase):
    kind: Literal["unblock_actor"] = "unblock_actor"
    actor_kind: Literal["ip", "user", "session"]
    value: str = Field(min_length=1)

    @property
    def risk(self) -> Risk:
        return Risk.REVERSIBLE

    @property
    def target(self) -> str:
        return f"{self.actor_kind} {self.value}"


class SetUploadAllowlist(_PlanBase):
    """Replace what ``/api/uploads`` accepts (extensions and MIME types); the previous lists are the undo."""

    kind: Literal["set_upload_allowlist"] = "set_upload_allowlist"
    extensions: tuple[str, ...]
    mime_types: tuple[str, ...]
    previous_extensions: tuple[str, ...] | None = None
    previous_mime_types: tuple[str, ...] | None = None

    @property
    def risk(self) -> Risk:
        return Risk.REVERSIBLE

    @property
    def target(self) -> str:
        return f"uploads: {','.join(self.extensions) or '(none)'} / {','.join(self.mime_types) or '(none)'}"

    def undo(self) -> Plan | None:
        if self.previous_extensions is None or self.previous_mime_types is None:
            return None
        return SetUploadAllowlist(service=self.service, extensions=self.previous_extensions,
                                  mime_types=self.previous_mime_types, previous_extensions=self.extensions,
                                  previous_mime_types=self.mime_types, reason="undo")


class ReloadSignatures(_PlanBase):
    """Ask the antivirus daemon to reload its signature database (clamd ``RELOAD``)."""

    kind: Literal["reload_signatures"] = "reload_signatures"

    @property
    def risk(self) -> Risk:
        return Risk.REVERSIBLE

    @property
    def target(self) -> str:
        return "antivirus signatures"


class SetAuthSetting(_PlanBase):
    """Change one identity/access setting (e.g. which claim carries the role). Destructive: it changes who gets in."""

    kind: Literal["set_auth_setting"] = "set_auth_setting"
    setting: str = Field(min_length=1)
    value: str
    previous: str | None = None

    @property
    def risk(self) -> Risk:
        return Risk.DESTRUCTIVE

    @property
    def target(self) -> str:
        return f"{self.setting}={self.value!r}"

    def undo(self) -> Plan | None:
        if self.previous is None:
            return None
        return SetAuthSetting(service=self.service, setting=self.setting, value=self.previous, previous=self.value,
                              reason="undo")


class DrainInstance(_PlanBase):
    """Take one instance out of the load balancer and wait, at most ``timeout_s``, until it serves nothing: new
    requests go to the others, those in flight finish (the deregistration delay bounds it). Undo: put it back."""

    kind: Literal["drain_instance"] = "drain_instance"
    instance_id: str = Field(min_length=1)
    timeout_s: float = Field(default=330.0, gt=0)

    @property
    def risk(self) -> Risk:
        return Risk.REVERSIBLE

    @property
    def target(self) -> str:
        return f"{self.instance_id} out of the load balancer"

    def undo(self) -> Plan:
        return RestoreInstance(service=self.service, instance_id=self.instance_id, reason="undo")


class RestoreInstance(_PlanBase):
    """Put an instance back into the load balancer and wait, at most ``timeout_s``, until its health checks pass."""

    kind: Literal["restore_instance"] = "restore_instance"
    instance_id: str = Field(min_length=1)
    timeout_s: float = Field(default=120.0, gt=0)

    @property
    def risk(self) -> Risk:
        return Risk.REVERSIBLE

    @property
    def target(self) -> str:
        return f"{self.instance_id} into the load balancer"

    def undo(self) -> Plan:
        return DrainInstance(service=self.service, instance_id=self.instance_id, reason="undo")


class RestartInstance(_PlanBase):
    """Restart one instance's process. Destructive: its memory (metric buffers, rate-limit counters) is lost, and
    requests it is still serving fail (kamkmserve exits on SIGTERM without draining). ``drained`` records that it
    was out of the load balancer first. No undo."""

    kind: Literal["restart_instance"] = "restart_instance"
    instance_id: str = Field(min_length=1)
    drained: bool = False

    @property
    def risk(self) -> Risk:
        return Risk.DESTRUCTIVE

    @property
    def target(self) -> str:
        return f"{self.instance_id} ({'drained' if self.drained else 'STILL IN THE LOAD BALANCER'})"


Plan = Annotated[
    EnableMaintenance | DisableMaintenance | Rollback | SetFeatureFlag | ScaleUp | ScaleDown | PauseJobs
    | ResumeJobs | TerminateBackend | CreateIndexPlan | BlockActor | UnblockActor | SetUploadAllowlist
    | ReloadSignatures | SetAuthSetting | DrainInstance | RestoreInstance | RestartInstance,
    Field(discriminator="kind"),
]


def undoes(plan: BaseModel, earlier: BaseModel) -> bool:
    """Whether ``plan`` puts back what ``earlier`` changed: it is ``earlier``'s undo, whatever its reason text."""
    undo = getattr(earlier, "undo", lambda: None)()
    return undo is not None and undo.model_dump(exclude={"reason"}) == plan.model_dump(exclude={"reason"})


def plan_digest(plan: BaseModel) -> str:
    """SHA-256 of the plan's canonical JSON: an approval names it, so it approves exactly this plan."""
    return hashlib.sha256(plan.model_dump_json().encode()).hexdigest()


class PlanEnvelope(BaseModel):
    """Wrapper so a bare Plan can be validated from JSON (``PlanEnvelope.model_validate({"plan": ...})``)."""

    plan: Plan


# ---------------------------------------------------------------------------------------------------------
# Decisions, approvals, actions.


class Verdict(StrEnum):
    ALLOW = "allow"
    NEEDS_APPROVAL = "needs_approval"
    DENY = "deny"


class Decision(_Frozen):
    verdict: Verdict
    reasons: tuple[str, ...] = ()


class ApprovalAnswer(StrEnum):
    APPROVED = "approved"
    DENIED = "denied"
    TIMEOUT = "timeout"
    REFUSED = "refused"  # answered by someone not on the approver list


class Approval(_Frozen):
    answer: ApprovalAnswer
    approver: str = ""
    reason: str = ""
    at: datetime = Field(default_factory=utcnow)
    #: Chosen by whoever answered (the CLI) to find the run's verdict on *their* answer in the store.
    answer_id: str = ""
    #: How the answer came: "form" (Prefect UI or CLI), "slack", "script", or "" for the run's own timeout.
    via: str = ""

    @property
    def granted(self) -> bool:
        return self.answer is ApprovalAnswer.APPROVED


class ActionState(StrEnum):
    PLANNED = "planned"  # evaluated, not applied (dry run, denied, skipped)
    INTENT = "intent"  # ledger row written, mutation under way
    APPLIED = "applied"
    FAILED = "failed"  # not in effect: refused, never sent, or read back from the platform as not applied
    # The call was sent and its answer lost (a timeout, a dropped connection), and reading the platform back could
    # not tell either: it may be in effect. Only a person can settle it, so it is escalated with its undo.
    UNKNOWN = "unknown"
    UNDONE = "undone"


#: Ledger states whose mutation may or may not have taken effect: each is listed with its undo (reconciler, escalation)
#: until a person settles it.
UNSETTLED_STATES = frozenset({ActionState.INTENT, ActionState.UNKNOWN})


class ActionRecord(BaseModel):
    id: str = Field(default_factory=lambda: new_id("act"))
    phase: Phase
    plan: Plan
    decision: Verdict
    reasons: tuple[str, ...] = ()
    approval: Approval | None = None
    state: ActionState = ActionState.PLANNED
    # What went wrong with the lever call. An action read back as applied after its answer was lost keeps it too:
    # the state says what is in effect, this says why the lever's own answer could not.
    error: str | None = None
    # How the outcome is known when the lever's own answer was lost: what reading the platform back showed.
    read_back: str | None = None
    started_at: datetime = Field(default_factory=utcnow)
    completed_at: datetime | None = None

    @property
    def kind(self) -> str:
        return self.plan.kind

    @property
    def risk(self) -> Risk:
        return self.plan.risk

    @property
    def applied(self) -> bool:
        return self.state is ActionState.APPLIED

    @property
    def unsettled(self) -> bool:
        """It may or may not be in effect (see :data:`UNSETTLED_STATES`)."""
        return self.state in UNSETTLED_STATES


class Sample(_Frozen):
    at: datetime
    value: float | None  # None = could not read (unknown)
    healthy: bool


class Verification(_Frozen):
    check: str
    healthy: bool
    samples: tuple[Sample, ...] = ()
    required_consecutive: int = 3
    detail: str = ""


class TimelineEntry(_Frozen):
    at: datetime = Field(default_factory=utcnow)
    phase: Phase
    event: str
    detail: str = ""


class Evidence(_Frozen):
    source: str
    summary: str
    items: tuple[dict[str, Any], ...] = ()
    available: bool = True


class IncidentReport(BaseModel):
    incident_id: str
    runbook: str
    service: str
    mode: Mode
    severity: Severity
    outcome: Outcome
    alert: Alert
    flow_run_id: str | None = None
    findings: list[Finding] = Field(default_factory=list)
    actions: list[ActionRecord] = Field(default_factory=list)
    evidence: list[Evidence] = Field(default_factory=list)
    verification: Verification | None = None
    timeline: list[TimelineEntry] = Field(default_factory=list)
    escalation: str | None = None
    postmortem: str = ""
    started_at: datetime = Field(default_factory=utcnow)
    finished_at: datetime | None = None

    def summary_json(self) -> dict[str, Any]:
        """The stable JSON shape the CLI prints with ``--json``."""
        return {
            "incident_id": self.incident_id,
            "runbook": self.runbook,
            "service": self.service,
            "mode": self.mode.value,
            "severity": self.severity.value,
            "outcome": self.outcome.value,
            "flow_run_id": self.flow_run_id,
            "escalation": self.escalation,
            "findings": [
                {
                    "check": f.check,
                    "status": f.status.value,
                    "observed": f.observed,
                    "threshold": f.threshold,
                    "unit": f.unit,
                    "detail": f.detail,
                }
                for f in self.findings
            ],
            "actions": [
                {
                    "id": a.id,
                    "phase": a.phase.value,
                    "kind": a.kind,
                    "target": a.plan.target,
                    "risk": a.risk.value,
                    "decision": a.decision.value,
                    "reasons": list(a.reasons),
                    "approval": a.approval.answer.value if a.approval else None,
                    "approver": a.approval.approver if a.approval else None,
                    "applied": a.applied,
                    "state": a.state.value,
                    "error": a.error,
                    "read_back": a.read_back,
                    "undo": (u.model_dump(mode="json") if (u := a.plan.undo()) else None),
                }
                for a in self.actions
            ],
            "evidence": [e.model_dump(mode="json") for e in self.evidence],
            "verification": (
                {
                    "check": self.verification.check,
                    "healthy": self.verification.healthy,
                    "required_consecutive": self.verification.required_consecutive,
                    "detail": self.verification.detail,
                    "samples": [s.model_dump(mode="json") for s in self.verification.samples],
                }
                if self.verification
                else None
            ),
            "timeline": [t.model_dump(mode="json") for t in self.timeline],
            "started_at": self.started_at.isoformat(),
            "finished_at": self.finished_at.isoformat() if self.finished_at else None,
        }
