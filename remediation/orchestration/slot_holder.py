"""Who holds a service's remediation slot, and taking it over when that holder is gone.

Prefect frees a slot whose holder never released it only when its lease expires, and only where the server's lease
service runs and still knows the lease: Prefect's temporary API (``remediate demo``, ``remediate run`` without
``PREFECT_API_URL``) runs no such service and keeps leases in memory, so a demo interrupted while it held
``remediate-kamkmserve`` left ``active_slots=1`` for good, and every later demo waited forever.

So the holder records itself in a Prefect Variable next to the limit (``<limit>-holder``: lease, flow run, pid,
host, and the limit's ``updated`` stamp once acquired), and forgets it *before* releasing: a record still there
while the slot is taken means its holder never released. A waiter takes the slot over when that holder is gone:
its process is dead (same host), or its flow run ended or vanished, or its lease is gone. It releases the holder's
lease if Prefect still has it; if Prefect lost it, it gives the slot back by count, but only when the limit has not
changed since the holder took it (otherwise that count may be a newer holder's, who has not recorded itself yet).
"""

from __future__ import annotations

import atexit
import logging
import os
import re
import socket
import threading
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

from remediation.orchestration.leases import current_flow_run_id
from remediation.orchestration.serve_record import pid_alive

log = logging.getLogger("remediation.orchestration")


@dataclass(frozen=True)
class Holder:
    limit: str
    lease_id: str
    pid: int
    host: str
    flow_run_id: str | None
    acquired_at: str
    limit_updated: str | None  # the limit's `updated` right after this holder took its slot

    def describe(self) -> str:
        run = f"flow run {self.flow_run_id}, " if self.flow_run_id else ""
        return f"{run}pid {self.pid} on {self.host}"


def variable_name(limit: str) -> str:
    """Prefect variable names are lowercase letters, digits, ``-`` and ``_``."""
    return re.sub(r"[^a-z0-9_-]+", "-", limit.lower())[:240] + "-holder"


# Leases this process holds (lease id -> limit name): released at exit if still held (a Ctrl-C that ends the
# process while a runbook thread holds the slot), and by :func:`release_held` on demand.
_held: dict[str, str] = {}
_held_lock = threading.Lock()
_atexit_registered = False
_told_unrecorded: set[str] = set()


async def record(client: Any, limit: str, lease_id: UUID) -> Holder:
    """Record this process as the holder of ``limit``'s slot under ``lease_id`` (just acquired)."""
    global _atexit_registered
    from prefect.client.schemas.actions import VariableCreate, VariableUpdate

    current = await client.read_global_concurrency_limit_by_name(limit)
    holder = Holder(limit=limit, lease_id=str(lease_id), pid=os.getpid(), host=socket.gethostname(),
                    flow_run_id=current_flow_run_id(), acquired_at=datetime.now(UTC).isoformat(),
                    limit_updated=current.updated.isoformat() if current.updated else None)
    with _held_lock:
        _held[holder.lease_id] = limit
        if not _atexit_registered:
            atexit.register(release_held)
            _atexit_registered = True
    name = variable_name(limit)
    if await client.read_variable_by_name(name) is None:
        try:
            await client.create_variable(VariableCreate(name=name, value=asdict(holder)))
            return holder
        except Exception:  # created by someone else meanwhile (a holder that is gone): overwrite it below
            log.debug("holder variable %s appeared meanwhile", name, exc_info=True)
    await client.update_variable(VariableUpdate(name=name, value=asdict(holder)))
    return holder


async def forget(client: Any, limit: str, lease_id: UUID | str) -> None:
    """Remove the record if it is still ``lease_id``'s; call before releasing the slot."""
    with _held_lock:
        _held.pop(str(lease_id), None)
    found = await read(client, limit)
    if found is not None and found.lease_id == str(lease_id):
        await client.delete_variable_by_name(variable_name(limit))


async def read(client: Any, limit: str) -> Holder | None:
    variable = await client.read_variable_by_name(variable_name(limit))
    if variable is None or not isinstance(variable.value, dict):
        return None
    try:
        holder = Holder(**variable.value)
    except TypeError:
        return None
    return holder if holder.limit == limit else None


async def why_gone(client: Any, holder: Holder) -> str | None:
    """Why ``holder`` can no longer be holding its slot; None when it may still be."""
    from prefect.exceptions import ObjectNotFound

    if holder.host == socket.gethostname() and holder.pid != os.getpid() and not pid_alive(holder.pid):
        return f"its process {holder.pid} has exited"
    if holder.flow_run_id:
        try:
            run = await client.read_flow_run(UUID(holder.flow_run_id))
        except ObjectNotFound:
            return f"its flow run {holder.flow_run_id} no longer exists"
        if run.state is not None and run.state.is_final():
            return f"its flow run {holder.flow_run_id} is {run.state.name}"
    if holder.host != socket.gethostname() and not await _lease_exists(client, UUID(holder.lease_id)):
        # Only from another host: there the pid says nothing, and Prefect's temporary APIs (one per process on
        # this host, sharing a database) each know only their own leases.
        return f"its lease {holder.lease_id} is gone"
    return None


async def _lease_exists(client: Any, lease_id: UUID) -> bool:
    from prefect.exceptions import PrefectHTTPStatusError

    try:
        # Renewing is the only way Prefect answers "does this lease exist"; by the server's minimum, 60 s.
        await client.renew_concurrency_lease(lease_id=lease_id, lease_duration=60)
    except PrefectHTTPStatusError as exc:
        if exc.response.status_code in (404, 410):
            return False
        raise
    return True


async def take_over_if_stale(client: Any, limit: str, service: str) -> str | None:
    """Free ``limit``'s slot if it is taken and its recorded holder is gone; the line said about it, else None."""
    current = await client.read_global_concurrency_limit_by_name(limit)
    if current.active_slots < current.limit:
        return None
    holder = await read(client, limit)
    if holder is None:
        if limit not in _told_unrecorded:  # taken before holders were recorded, or by something else: say how to free
            _told_unrecorded.add(limit)
            log.warning("the slot of %s is taken by a holder that left no record; if no remediation of %s is "
                        "running: prefect global-concurrency-limit update %s --active-slots 0", limit, service, limit)
        return None
    why = await why_gone(client, holder)
    if why is None:
        return None
    await client.release_concurrency_slots_with_lease(lease_id=UUID(holder.lease_id))  # a no-op if Prefect lost it
    after = await client.read_global_concurrency_limit_by_name(limit)
    unchanged = holder.limit_updated is not None and after.updated is not None \
        and after.updated.isoformat() == holder.limit_updated
    if after.active_slots >= after.limit and unchanged:
        # Prefect lost the lease (its temporary API, or a server restart): the count is all that is left of it.
        await client.release_concurrency_slots(names=[limit], slots=1, occupancy_seconds=_held_for_s(holder))
    if await read(client, limit) == holder:
        await client.delete_variable_by_name(variable_name(limit))
    line = f"took over the remediation slot of {service} from {holder.describe()}: {why}"
    log.warning("%s", line)
    return line


def _held_for_s(holder: Holder) -> float:
    """How long ``holder`` held its slot (Prefect's occupancy statistics; it wants more than 0)."""
    try:
        return max(1.0, (datetime.now(UTC) - datetime.fromisoformat(holder.acquired_at)).total_seconds())
    except ValueError:
        return 1.0


def release_held() -> list[str]:
    """Release every slot this process still holds (synchronously: for Ctrl-C and exit, when the runbook's own
    event loop may never run again); the limits released."""
    from prefect import get_client

    with _held_lock:
        held = dict(_held)
        _held.clear()
    released = []
    for lease_id, limit in held.items():
        try:
            with get_client(sync_client=True) as client:
                variable = client.read_variable_by_name(variable_name(limit))
                if variable is not None and isinstance(variable.value, dict) \
                        and variable.value.get("lease_id") == lease_id:
                    client.delete_variable_by_name(variable_name(limit))
                client.release_concurrency_slots_with_lease(lease_id=UUID(lease_id))
            released.append(limit)
        except Exception as exc:  # at exit the API may be gone already: the next taker judges this holder then
            log.warning("could not release the slot of %s (%s: %s)", limit, type(exc).__name__, exc)
    return released
