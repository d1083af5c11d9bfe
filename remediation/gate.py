"""The only place a plan touches the world.

``apply`` refuses a plan without a recorded ALLOW or a granted approval, writes the ledger's intent row
*before* mutating (so a crash mid-action is visible and reconcilable) and completes it after.
Mutations are idempotent at the provider: applying a plan twice leaves the same state.
"""

from __future__ import annotations

from typing import TypeVar

from remediation import levers
from remediation.models import (
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
    """Apply a permitted plan; returns the record in its final state (APPLIED or FAILED)."""
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
    try:
        await _mutate(action.plan, providers)
    except Exception as exc:
        failed = intent.model_copy(
            update={"state": ActionState.FAILED, "error": f"{type(exc).__name__}: {exc}", "completed_at": now()}
        )
        store.complete_action(failed.id, state=ActionState.FAILED, error=failed.error,
                              completed_at=failed.completed_at)
        return failed
    done = intent.model_copy(update={"state": ActionState.APPLIED, "completed_at": now()})
    store.complete_action(done.id, state=ActionState.APPLIED, completed_at=done.completed_at)
    return done


async def _mutate(plan: Plan, providers: Providers) -> None:
    match plan:
        case EnableMaintenance(path_prefixes=prefixes):
            edge = _lever(providers.edge, plan)
            for prefix in prefixes:
                await edge.set_maintenance(prefix, True)
        case DisableMaintenance(path_prefixes=prefixes):
            edge = _lever(providers.edge, plan)
            for prefix in prefixes:
                await edge.set_maintenance(prefix, False)
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
            for name in sorted(previous):
                await jobs.set_workers(plan.service, name, 0)
        case ResumeJobs(workers=workers):
            jobs = _lever(providers.jobs, plan)
            for name, count in sorted(workers.items()):
                await jobs.set_workers(plan.service, name, count)
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


_L = TypeVar("_L")


def _lever(lever: _L | None, plan: Plan) -> _L:
    """The lever, narrowed for the type checker: ``apply`` refused a plan without one before writing its intent."""
    if lever is None:
        raise NoLever(f"no lever applies {plan.summary()}")
    return lever
