"""Run leases: the process executing a run says so every few seconds, so its death is noticed whatever the run's state.

Prefect's own zombie detection (the heartbeat automation, ``limits.ensure_zombie_automation``) arms only after a
run's first heartbeat *since its last state event*: a run SIGKILLed 14 s after an approval resumed it (heartbeats
every 30 s) stayed Running for 22 min, and a paused run whose process died stayed Paused until its pause expired,
its incident open and its service refused to every other remediation. A lease has no such gap: it is taken when the
run starts executing here, renewed every ``REMEDIATE_RUN_LEASE_RENEW_S`` (15 s) by a background thread, and given
back when the run stops executing here. A lease not renewed for ``REMEDIATE_RUN_LEASE_S`` (60 s) means the process is
gone: the next reconcile of any ``remediate serve`` sharing the store (``remediation.reconcile``) crashes the run in
Prefect and closes its incident.

Who holds leases:
  * the warm executor (``warm.WarmExecutor``) for every run it claims, from the claim (``Pending``) to the end of its
    execution; a run it suspends to survive a restart has its lease given back (nothing executes it meanwhile);
  * any other process executing a runbook (a served run's child process, ``remediate run``): the runbook takes its
    run's lease when it opens its incident (``hold_current_run``), and keeps it until the process exits or the
    incident is closed.

One :class:`LeaseKeeper` per process (``process_keeper``) renews all of that process's leases in one thread. The
lease lives in the store (``remediation.store.flow_runs``), so every replica sees it, whatever Prefect API it uses.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from remediation.models import utcnow
from remediation.orchestration.prefect_identity import PrefectApi

log = logging.getLogger("remediation.orchestration")


def holder_name() -> str:
    """``host:pid`` of this process: what a lease names as its holder and a reconcile as the reclaimer."""
    return f"{socket.gethostname()}:{os.getpid()}"


@dataclass
class _Holding:
    store: Any
    flow_run_id: str
    on_lost: Callable[[], None] | None
    last_renewed: float = field(default_factory=time.monotonic)
    failing_since: float | None = None


class LeaseKeeper:
    """Takes, renews (in one daemon thread) and releases the run leases of this process."""

    def __init__(self, *, ttl_s: float, renew_s: float, holder: str | None = None,
                 clock: Callable[[], datetime] = utcnow) -> None:
        if renew_s * 2 > ttl_s:
            raise ValueError(f"renew every {renew_s:g}s is too slow for a {ttl_s:g}s lease: one late renewal would "
                             "get a live run crashed")
        self.ttl_s = ttl_s
        self.renew_s = renew_s
        self.holder = holder or holder_name()
        self._clock = clock
        self._lock = threading.Lock()
        self._holdings: dict[str, _Holding] = {}
        self._wake = threading.Event()
        self._stopped = threading.Event()
        self._thread: threading.Thread | None = None

    def hold(self, store: Any, flow_run_id: str, api: PrefectApi, *,
             on_lost: Callable[[], None] | None = None) -> None:
        """Take the run's lease (this process executes it from now on) and keep renewing it. Holding a run this
        keeper already holds changes nothing (the warm executor takes it at the claim, the runbook again when it
        opens its incident). Raises the store's error if the lease could not be written."""
        with self._lock:
            if flow_run_id in self._holdings:
                return
        store.take_run_lease(flow_run_id, holder=self.holder, ttl_s=self.ttl_s, api_url=api.url, api_id=api.id,
                             now=self._clock())
        with self._lock:
            self._holdings[flow_run_id] = _Holding(store=store, flow_run_id=flow_run_id, on_lost=on_lost)
            self._ensure_thread()

    def release(self, flow_run_id: str) -> None:
        """This process stops executing the run on purpose; a failure to say so is logged (the lease then lapses,
        and a reconcile finds the run final and closes its incident, or finds it alive elsewhere)."""
        with self._lock:
            holding = self._holdings.pop(flow_run_id, None)
        if holding is None:
            return
        try:
            holding.store.release_run_lease(flow_run_id, holder=self.holder, now=self._clock())
        except Exception as exc:
            log.warning("could not release the lease of run %s (%s: %s); it lapses in %gs", flow_run_id,
                        type(exc).__name__, str(exc)[:200], self.ttl_s)

    def holds(self, flow_run_id: str) -> bool:
        with self._lock:
            return flow_run_id in self._holdings

    def held(self) -> list[str]:
        with self._lock:
            return sorted(self._holdings)

    def close(self) -> None:
        """Stop renewing and release every lease still held (a clean shutdown)."""
        self._stopped.set()
        self._wake.set()
        for flow_run_id in self.held():
            self.release(flow_run_id)
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(5)

    def renew_all(self) -> None:
        """One renewal pass over every lease held (the thread calls it every ``renew_s``)."""
        with self._lock:
            holdings = list(self._holdings.values())
        for holding in holdings:
            self._renew(holding)

    def _renew(self, holding: _Holding) -> None:
        try:
            answer = holding.store.renew_run_lease(holding.flow_run_id, holder=self.holder, ttl_s=self.ttl_s,
                                                   now=self._clock())
        except Exception as exc:
            now = time.monotonic()
            if holding.failing_since is None:
                holding.failing_since = now
                log.warning("could not renew the lease of run %s (%s: %s); retrying every %gs", holding.flow_run_id,
                            type(exc).__name__, str(exc)[:200], self.renew_s)
            elif now - holding.last_renewed > self.ttl_s:
                log.error("the lease of run %s has lapsed (not renewed for %.0fs): a reconcile may crash the run",
                          holding.flow_run_id, now - holding.last_renewed)
            return
        holding.last_renewed, holding.failing_since = time.monotonic(), None
        if not answer.held:
            with self._lock:
                self._holdings.pop(holding.flow_run_id, None)
            log.error("the lease of run %s was reclaimed: a reconcile found it lapsed, crashed the run and closed "
                      "its incident while this process (%s) still executed it", holding.flow_run_id, self.holder)
            if holding.on_lost is not None:
                holding.on_lost()
        elif answer.incident_open is False:
            # The run's incident is closed: nothing is left for a reconcile to do about this run.
            self.release(holding.flow_run_id)

    def _ensure_thread(self) -> None:
        if self._thread is None or not self._thread.is_alive():
            self._stopped.clear()
            self._thread = threading.Thread(target=self._loop, name="run-leases", daemon=True)
            self._thread.start()

    def _loop(self) -> None:
        while not self._stopped.is_set():
            self._wake.wait(self.renew_s)
            self._wake.clear()
            if self._stopped.is_set():
                return
            try:
                self.renew_all()
            except Exception:  # never let the renewing thread die: every lease of the process would lapse
                log.exception("renewing run leases failed")


_process_lock = threading.Lock()
_process_keeper: LeaseKeeper | None = None


def process_keeper(settings: Any) -> LeaseKeeper:
    """This process's keeper, made on first use from ``settings`` (``run_lease_s``, ``run_lease_renew_s``)."""
    global _process_keeper
    with _process_lock:
        if _process_keeper is None:
            _process_keeper = LeaseKeeper(ttl_s=settings.run_lease_s, renew_s=settings.run_lease_renew_s)
        return _process_keeper


@dataclass(frozen=True)
class RunLeases:
    """What the warm executor needs to lease the runs it executes: a keeper, the store, the API they live on."""

    keeper: LeaseKeeper
    store: Any
    api: PrefectApi

    def take(self, flow_run_id: str, on_lost: Callable[[], None] | None = None) -> None:
        self.keeper.hold(self.store, flow_run_id, self.api, on_lost=on_lost)

    def release(self, flow_run_id: str) -> None:
        self.keeper.release(flow_run_id)

    def record_owner(self, flow_run_id: str) -> None:
        """The run exists on our API (created here; perhaps left for a runner): record it, without a lease."""
        self.store.record_run_owner(flow_run_id, api_url=self.api.url, api_id=self.api.id)


def current_flow_run_id() -> str | None:
    """The id of the flow run this code executes in; None outside a run."""
    from prefect.runtime import flow_run

    return str(flow_run.id) if flow_run.id else None


def hold_current_run(providers: Any) -> None:
    """Lease the flow run this code executes in (no-op outside a run, or when this process already holds it).

    Called by the runbooks when they open their incident, so that a run executed by any process (a served child, a
    ``remediate run``) is leased, not only the warm executor's. Never raises: a run must not fail because its lease
    could not be written; it is then only watched by Prefect's heartbeats, and this is logged."""
    flow_run_id = current_flow_run_id()
    if flow_run_id is None:
        return
    try:
        keeper = process_keeper(providers.settings)
        if keeper.holds(flow_run_id):
            return
        from remediation.orchestration.prefect_identity import current_api

        keeper.hold(providers.store, flow_run_id, current_api())
    except Exception as exc:
        log.warning("could not lease run %s (%s: %s): if this process dies, only Prefect's heartbeat automation "
                    "will notice", flow_run_id, type(exc).__name__, str(exc)[:300])
