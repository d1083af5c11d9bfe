"""The only place a plan touches the world.

``apply`` refuses a plan without a recorded ALLOW or a granted approval, writes the ledger's intent row
*before* mutating (so a crash mid-action is visible and reconcilable) and completes it after.
Mutations are idempotent at the provider: applying a plan twice leaves the same state.

A lever call that raises is not always a failure. When its answer was lost (a timeout after the request went out)
or the plan failed part-way, the platform may have changed: the row is completed ``unknown`` first, then the
platform is read back (``remediation.read_back``) and the row settled ``applied``, ``failed`` or left ``unknown``
with the read-back's evidence (``remediation.outcomes``). The call is never repeated: a second attempt could apply
twice what the first one did.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from functools import partial
from typing import TypeVar

from remediation import levers
from remediation.call_outcome import CallOutcome, classify
from remediation.models import (
    UNSETTLED_STATES,
    ActionRecord,
    ActionState,
    BlockActor,
    CreateIndexPlan,
    DisableMaintenance,
    DrainInstance,
    EnableMaintenance,
    PauseJobs,
    Plan,
    ReloadSignatures,
    RestartInstance,
    RestoreInstance,
    ResumeJobs,
    Rollback,
    ScaleDown,
    ScaleUp,
    SetAuthSetting,
    SetFeatureFlag,
    SetUploadAllowlist,
    TerminateBackend,
    UnblockActor,
    Verdict,
)
from remediation.outcomes import must_read_back, not_applied, settle, uncertainty
from remediation.read_back import read_back
from remediation.runtime import Providers


class GateRefused(RuntimeError):
    """A plan reached the gate without permission; nothing was changed."""


class NoLever(RuntimeError):
    """The platform offers no way to carry out this plan."""


def permitted(action: ActionRecord) -> bool:
    if action.decision is Verdict.ALLOW:
        return True
    return action.decision is Verdict.NEEDS_APPROVAL and action.approval is not None and action.approval.granted


async def apply(action: ActionRecord, incident_id: str, providers: Providers) -> ActionRecord:
    """Apply a permitted plan; returns the record in its final state (APPLIED, FAILED or UNKNOWN)."""
    if not permitted(action):
        raise GateRefused(
            f"refused {action.plan.summary()}: decision {action.decision.value}, "
            f"approval {action.approval.answer.value if action.approval else 'none'}"
        )
    store = providers.store
    now = providers.clock.now
    problem = levers.lever_problem(action.plan, providers)
    if problem is not None:  # nothing can be changed, so no intent: recorded failed, with why
        failed = action.model_copy(update={"state": ActionState.FAILED, "error": f"NoLever: {problem}",
                                           "started_at": now(), "completed_at": now()})
        store.record_action(incident_id, failed)
        return failed
    intent = action.model_copy(update={"state": ActionState.INTENT, "started_at": now()})
    store.record_intent(incident_id, intent)
    steps_done: list[str] = []
    try:
        await _mutate(action.plan, providers, steps_done)
    except Exception as exc:
        return await _after_failure(intent, exc, steps_done, providers)
    return _complete(intent, providers, ActionState.APPLIED)


async def _after_failure(intent: ActionRecord, exc: Exception, steps_done: list[str],
                         providers: Providers) -> ActionRecord:
    """Failed for certain, or ``unknown`` until the platform has been read back (see the module doc)."""
    outcome = classify(exc)
    if not must_read_back(outcome, steps_done):
        certain = not_applied(outcome, exc)
        return _complete(intent, providers, certain.state, certain.error)
    why = uncertainty(outcome, exc, steps_done)
    # Durable before the read: a crash during it leaves a row the reconciler lists as unsettled, with its undo.
    _complete(intent, providers, ActionState.UNKNOWN, f"outcome unknown: {why}; reading the platform back")
    found = await read_back(intent.plan, providers, timeout_s=_read_back_timeout_s(providers))
    settled = settle(why, found)
    return _complete(intent, providers, settled.state, settled.error, settled.read_back)


async def settle_after_crash(action: ActionRecord, providers: Providers) -> ActionRecord:
    """An action a dead run left ``intent`` or ``unknown``: read the platform back and record what it shows.

    The run that made the call died before it recorded the answer, so whether it took effect is a question for the
    platform, exactly as for a lost answer; ``unknown`` stays when the read cannot tell."""
    if action.state not in UNSETTLED_STATES:
        return action
    found = await read_back(action.plan, providers, timeout_s=_read_back_timeout_s(providers))
    settled = settle("the run that made the call died before it recorded the answer", found)
    return _complete(action, providers, settled.state, settled.error, settled.read_back)


def _read_back_timeout_s(providers: Providers) -> float:
    return max(providers.settings.http_timeout_s * 2, 2.0)


def _complete(intent: ActionRecord, providers: Providers, state: ActionState, error: str | None = None,
              read_back: str | None = None) -> ActionRecord:
    done = intent.model_copy(update={"state": state, "error": error, "read_back": read_back,
                                     "completed_at": providers.clock.now()})
    providers.store.complete_action(done.id, state=state, error=error, completed_at=done.completed_at,
                                    read_back=read_back)
    return done


async def _mutate(plan: Plan, providers: Providers, steps_done: list[str]) -> None:
    """Carry ``plan`` out. A plan of several calls notes each one that went (or may have gone) through in
    ``steps_done``: if a later one fails, the plan is half in effect and must be read back, not recorded failed."""
    match plan:
        case EnableMaintenance(path_prefixes=prefixes) | DisableMaintenance(path_prefixes=prefixes):
            edge = _lever(providers.edge, plan)
            enable = isinstance(plan, EnableMaintenance)
            await _one_by_one([(f"maintenance {'on' if enable else 'off'} {prefix}",
                                partial(edge.set_maintenance, prefix, enable)) for prefix in prefixes], steps_done)
        case Rollback(to_release=release):
            current = await _lever(providers.deploys, plan).rollback(release)
            if current.id != release:
                raise RuntimeError(f"rollback to {release} left {current.id} current")
        case SetFeatureFlag(flag=flag, enabled=enabled):
            await _lever(providers.edge, plan).set_flag(flag, enabled)
        case ScaleUp(to_replicas=replicas) | ScaleDown(to_replicas=replicas):
            now = await _lever(providers.capacity, plan).scale(plan.service, replicas)
            if now != replicas:
                raise RuntimeError(f"asked for {replicas} replicas of {plan.service}, the platform set {now}")
        case PauseJobs(previous=previous):
            jobs = _lever(providers.jobs, plan)
            await _one_by_one([(f"{name} paused", partial(jobs.set_workers, plan.service, name, 0))
                               for name in sorted(previous)], steps_done)
        case ResumeJobs(workers=workers):
            jobs = _lever(providers.jobs, plan)
            await _one_by_one([(f"{name} at {count} workers", partial(jobs.set_workers, plan.service, name, count))
                               for name, count in sorted(workers.items())], steps_done)
        case TerminateBackend(pid=pid):
            database = _lever(providers.database, plan)
            if not await database.terminate_backend(pid):
                raise RuntimeError(f"backend {pid} was not terminated (gone already, or it outlived the wait)")
        case CreateIndexPlan():
            database = _lever(providers.database, plan)
            await database.create_index_concurrently(plan.index())
        case BlockActor(actor_kind=kind, value=value, ttl_s=ttl):
            blocks = _lever(providers.blocks, plan)
            await blocks.block(kind, value, ttl, plan.reason)
        case UnblockActor(actor_kind=kind, value=value):
            await _lever(providers.blocks, plan).unblock(kind, value)
        case SetUploadAllowlist(extensions=extensions, mime_types=mime_types):
            from remediation.providers.security import UploadAllowlist

            uploads = _lever(providers.uploads, plan)
            await uploads.set_allowlist(UploadAllowlist(extensions=extensions, mime_types=mime_types))
        case ReloadSignatures():
            if not await _lever(providers.antivirus, plan).reload():
                raise RuntimeError("the antivirus daemon did not acknowledge RELOAD")
        case SetAuthSetting(setting=setting, value=value):
            await _lever(providers.identity, plan).set_setting(setting, value)
        case DrainInstance(instance_id=instance, timeout_s=timeout):
            await _lever(providers.instances, plan).drain(plan.service, instance, timeout)
        case RestoreInstance(instance_id=instance, timeout_s=timeout):
            await _lever(providers.instances, plan).restore(plan.service, instance, timeout)
        case RestartInstance(instance_id=instance):
            await _lever(providers.instances, plan).restart(plan.service, instance)
        case _:
            raise NoLever(f"no lever applies {plan.summary()}")


async def _one_by_one(calls: list[tuple[str, Callable[[], Awaitable[object]]]], steps_done: list[str]) -> None:
    """Independent calls of one plan (one per prefix, per job pool), in order, each sent once.

    A lost answer does not stop the others: that call may well have landed, and the rest are separate changes the
    plan still needs (the read-back then judges the whole). Any other failure stops here: the platform refused, or
    cannot be reached, and the calls after it would fare no better."""
    lost: Exception | None = None
    for step, call in calls:
        try:
            await call()
        except Exception as exc:
            if classify(exc) is not CallOutcome.ANSWER_LOST:
                raise
            lost = lost or exc
            steps_done.append(f"{step} (answer lost)")
            continue
        steps_done.append(step)
    if lost is not None:
        raise lost


_L = TypeVar("_L")


def _lever(lever: _L | None, plan: Plan) -> _L:
    """The lever, narrowed for the type checker: ``apply`` refused a plan without one before writing its intent."""
    if lever is None:
        raise NoLever(f"no lever applies {plan.summary()}")
    return lever
