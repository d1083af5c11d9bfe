"""Server-side objects the runbooks rely on: per-service locks, the zombie-run automation, the work pool.

Prefect creates none of these implicitly, and the failure modes of a missing one are silent
(docs/reference/prefect.md §5, §8): without the limit a non-strict ``concurrency()`` only warns and lets two
remediations of one service run at once; without the automation a SIGKILLed run stays ``Running`` forever. Every
``ensure_*`` is idempotent and safe when several processes bootstrap at once, so each process may call them at start-up
without coordination.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta
from typing import Any
from uuid import UUID

from remediation.models import OUTCOME_STATE_NAMES

log = logging.getLogger("remediation.orchestration")

SERVICE_LIMIT_PREFIX = "remediate-"
ZOMBIE_AUTOMATION = "crash-silent-flow-runs"
RUNBOOKS_POOL = "runbooks"
#: Server minimum for a concurrency lease (docs/reference/prefect.md §5: 30 gives a 422). A holder that dies without
#: releasing blocks the service for about this long, then the lease expires and the next run gets the slot.
LEASE_S = 60
#: Our runbooks end Completed under a name that says the outcome (OUTCOME_STATE_NAMES): those count as final too.
_FINAL_EVENTS = tuple(f"prefect.flow-run.{s}" for s in
                      ("Completed", "Failed", "Cancelled", "Crashed", "Paused", "Suspended",
                       *OUTCOME_STATE_NAMES.values()))

# Limits this process already knows to exist: the lock path then costs no extra round trip.
_known_limits: set[str] = set()


class ServiceBusy(TimeoutError):
    """Another remediation holds the service's slot and it did not free up within the wait.

    A ``TimeoutError`` so that, if a flow does not catch it, Prefect ends the run ``TimedOut`` exactly as it
    would for the bare ``AcquireConcurrencySlotTimeoutError``.
    """

    def __init__(self, service: str, timeout_s: float | None) -> None:
        super().__init__(f"another remediation of '{service}' is in progress "
                         f"(its slot stayed taken for {timeout_s:g}s)" if timeout_s is not None else
                         f"another remediation of '{service}' is in progress")
        self.service = service


def service_limit_name(service: str) -> str:
    """``remediate-<service>``; characters Prefect bans in names (``/ % & > <``) and spaces become ``-``."""
    slug = re.sub(r"[/%&><\s]+", "-", service.strip()).strip("-") or "unnamed"
    return f"{SERVICE_LIMIT_PREFIX}{slug}"


def _limit_create(name: str, limit: int) -> Any:
    from prefect.client.schemas.actions import GlobalConcurrencyLimitCreate

    return GlobalConcurrencyLimitCreate(name=name, limit=limit)


def ensure_service_limit(service: str, limit: int = 1) -> str:
    """Create the global concurrency limit ``remediate-<service>`` unless it exists; return its name.

    Race-safe: two creators both miss the read, one create wins and the other gets 409, which is success.
    An existing limit is left as it is (an operator may have raised it on purpose).
    """
    from prefect import get_client
    from prefect.exceptions import ObjectAlreadyExists, ObjectNotFound

    name = service_limit_name(service)
    if name in _known_limits:
        return name
    with get_client(sync_client=True) as client:
        try:
            client.read_global_concurrency_limit_by_name(name)
        except ObjectNotFound:
            try:
                client.create_global_concurrency_limit(_limit_create(name, limit))
                log.info("created concurrency limit %s (limit %d)", name, limit)
            except ObjectAlreadyExists:
                pass
    _known_limits.add(name)
    return name


async def aensure_service_limit(service: str, limit: int = 1) -> str:
    """``ensure_service_limit`` for async code (flows), without blocking their event loop."""
    from prefect import get_client
    from prefect.exceptions import ObjectAlreadyExists, ObjectNotFound

    name = service_limit_name(service)
    if name in _known_limits:
        return name
    async with get_client() as client:
        try:
            await client.read_global_concurrency_limit_by_name(name)
        except ObjectNotFound:
            try:
                await client.create_global_concurrency_limit(_limit_create(name, limit))
                log.info("created concurrency limit %s (limit %d)", name, limit)
            except ObjectAlreadyExists:
                pass
    _known_limits.add(name)
    return name


#: While waiting for a taken slot, how often to look whether its holder is gone (slot_holder.take_over_if_stale).
TAKEOVER_CHECK_S = 5.0


@asynccontextmanager
async def service_lock(service: str, timeout_s: float | None = None) -> AsyncIterator[None]:
    """Hold the service's single remediation slot for the block; wait at most ``timeout_s`` (None: forever).

    ``strict=True`` because a missing limit must be an error, never a silent free-for-all; the limit is ensured
    first, and if it vanished since (someone deleted it) it is recreated once. A slot whose recorded holder is gone
    (its process exited, its run ended, its lease lapsed) is taken over before and while waiting, with one line
    saying so (``remediation.orchestration.slot_holder``); Prefect alone frees it only when the lease expires, and
    never on its temporary API. Raises ``ServiceBusy`` when the wait times out; exceptions from inside the block
    pass through untouched.
    """
    from prefect.concurrency.asyncio import (
        AcquireConcurrencySlotTimeoutError,
        ConcurrencySlotAcquisitionError,
        concurrency,
    )
    from prefect.concurrency.context import ConcurrencyContext

    name = await aensure_service_limit(service)
    # Before asking: a slot left by a holder that is gone is freed now, not after a retry interval (up to 30 s).
    await _take_over_once(name, service)
    acquired = False
    for attempt in (1, 2):
        watcher = asyncio.create_task(_take_over_while_waiting(name, service))
        try:
            # Our own context: it hands us the lease id once granted, and releases the lease on the way out if
            # the block was cancelled before Prefect's own release ran.
            with ConcurrencyContext() as leases:
                async with concurrency(name, occupy=1, strict=True, timeout_seconds=timeout_s,
                                       lease_duration=LEASE_S):
                    acquired = True
                    watcher.cancel()
                    async with _recorded_holder(name, leases.cleanup_lease_ids[-1:]):
                        yield
            return
        except AcquireConcurrencySlotTimeoutError as exc:
            if acquired:
                raise
            raise ServiceBusy(service, timeout_s) from exc
        except ConcurrencySlotAcquisitionError:
            if acquired or attempt == 2:
                raise
            _known_limits.discard(name)
            await aensure_service_limit(service)
        finally:
            watcher.cancel()


async def _take_over_while_waiting(name: str, service: str) -> None:
    """Until cancelled (the slot was granted): free the slot whenever its recorded holder is gone."""
    while True:
        await asyncio.sleep(TAKEOVER_CHECK_S)
        await _take_over_once(name, service)


async def _take_over_once(name: str, service: str) -> None:
    from prefect import get_client

    from remediation.orchestration import slot_holder

    try:
        async with get_client() as client:
            line = await slot_holder.take_over_if_stale(client, name, service)
        if line:
            print(line, flush=True)  # the person who waited should see why it now goes ahead
    except Exception as exc:  # judging the holder is best effort: the lease still expires by itself
        log.warning("could not check the holder of %s (%s: %s)", name, type(exc).__name__, exc)


@asynccontextmanager
async def _recorded_holder(name: str, lease_ids: list[UUID]) -> AsyncIterator[None]:
    """Record this process as the holder for the block, and forget it before the slot is released."""
    from prefect import get_client

    from remediation.orchestration import slot_holder

    lease_id = lease_ids[0] if lease_ids else None
    if lease_id is not None:
        try:
            async with get_client() as client:
                await slot_holder.record(client, name, lease_id)
        except Exception as exc:  # without a record the slot is freed by its lease alone, as before
            log.warning("could not record the holder of %s (%s: %s)", name, type(exc).__name__, exc)
    try:
        yield
    finally:
        if lease_id is not None:
            try:
                async with get_client() as client:
                    await slot_holder.forget(client, name, lease_id)
            except Exception as exc:  # a stale record is judged (and cleared) by the next taker
                log.warning("could not forget the holder of %s (%s)", name, type(exc).__name__)


def _zombie_automation(within_s: float) -> Any:
    from prefect.client.schemas.objects import StateType
    from prefect.events.actions import ChangeFlowRunState
    from prefect.events.schemas.automations import AutomationCore, EventTrigger, Posture
    from prefect.events.schemas.events import ResourceSpecification

    return AutomationCore(
        name=ZOMBIE_AUTOMATION,
        description="A flow run that stops sending heartbeats without reaching a final state is marked Crashed "
                    "(its process was SIGKILLed, OOM-killed, or its host vanished).",
        trigger=EventTrigger(
            after={"prefect.flow-run.heartbeat"},
            expect={"prefect.flow-run.heartbeat", *_FINAL_EVENTS},
            match=ResourceSpecification({"prefect.resource.id": ["prefect.flow-run.*"]}),
            for_each={"prefect.resource.id"},
            posture=Posture.Proactive,
            threshold=1,
            within=timedelta(seconds=within_s),
        ),
        actions=[ChangeFlowRunState(state=StateType.CRASHED, message=f"No heartbeat for {within_s:g}s")],
    )


def heartbeat_seconds() -> int | None:
    """The heartbeat interval of flow runs started from this process's settings (None: heartbeats are off)."""
    from prefect.settings import get_current_settings

    value = get_current_settings().flows.heartbeat_frequency
    return int(value) if value is not None else None


def ensure_zombie_automation(heartbeat_s: int | None = None, within_s: float | None = None) -> UUID | None:
    """Install docs/reference/prefect.md §8's heartbeat automation, idempotent by name; return its id (None: not
    installed).

    ``within_s`` defaults to twice the heartbeat interval (at least 60 s), so one late heartbeat does not crash a
    healthy run: with Prefect's default 180 s heartbeat a 60 s window would (§8). Without heartbeats the
    automation would crash every run, so it is not installed. An existing automation with another window is
    updated; racing creators both create, then each deletes all copies but the lowest id, leaving one.
    """
    from prefect import get_client
    from prefect.exceptions import PrefectHTTPStatusError

    heartbeat_s = heartbeat_s if heartbeat_s is not None else heartbeat_seconds()
    if heartbeat_s is None:
        log.warning("flow heartbeats are off: not installing %s; SIGKILLed runs will stay Running",
                    ZOMBIE_AUTOMATION)
        return None
    within_s = within_s if within_s is not None else max(60.0, 2.0 * heartbeat_s)
    if within_s <= heartbeat_s:
        raise ValueError(f"within_s ({within_s:g}) must exceed the heartbeat interval ({heartbeat_s}s)")
    wanted = _zombie_automation(within_s)
    with get_client(sync_client=True) as client:
        existing = client.read_automations_by_name(ZOMBIE_AUTOMATION)
        if not existing:
            client.create_automation(wanted)
            existing = client.read_automations_by_name(ZOMBIE_AUTOMATION)
            log.info("created automation %s (window %gs)", ZOMBIE_AUTOMATION, within_s)
        keep, *extra = sorted(existing, key=lambda a: str(a.id))
        for duplicate in extra:
            # Replicas starting together each create one and each delete the others: the loser's delete finds the
            # duplicate gone already (404), which is the state it wanted. Every replica keeps the same (lowest) id.
            try:
                client.delete_automation(duplicate.id)
            except PrefectHTTPStatusError as exc:
                if exc.response.status_code != 404:
                    raise
        window = getattr(keep.trigger, "within", None)
        expected = set(getattr(keep.trigger, "expect", ()) or ())
        if window != timedelta(seconds=within_s) or not keep.enabled or expected != set(wanted.trigger.expect):
            client.update_automation(keep.id, wanted)
            log.info("updated automation %s (window %gs)", ZOMBIE_AUTOMATION, within_s)
        return keep.id


def ensure_work_pool(name: str = RUNBOOKS_POOL, pool_type: str = "process") -> None:
    """Create the work pool ``prefect deploy`` needs (docs/reference/prefect.md §3.2), with the worker type's default
    template.

    The template is what ``prefect work-pool create --type process`` would store; creating a pool through the
    API without it leaves workers nothing to build their job from.
    """
    from prefect import get_client
    from prefect.client.schemas.actions import WorkPoolCreate
    from prefect.exceptions import ObjectAlreadyExists, ObjectNotFound

    with get_client(sync_client=True) as client:
        try:
            client.read_work_pool(name)
            return
        except ObjectNotFound:
            pass
        try:
            client.create_work_pool(WorkPoolCreate(name=name, type=pool_type,
                                                   base_job_template=_default_template(pool_type)))
            log.info("created work pool %s (%s)", name, pool_type)
        except ObjectAlreadyExists:
            pass


def _default_template(pool_type: str) -> dict[str, Any]:
    if pool_type != "process":
        return {}
    from prefect.workers.process import ProcessWorker

    return ProcessWorker.get_default_base_job_template()
