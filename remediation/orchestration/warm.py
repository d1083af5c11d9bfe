"""The warm in-process executor: start a deployment run in ~0.2 s instead of ~1.5 s + poll.

A served runner spends ~1.5 s per run on a fresh interpreter importing Prefect, plus its poll interval
(docs/reference/prefect-fast-start.md §1-2). This executor imports the runbook flows once, at start-up, and runs each
run with Prefect's own engine (``prefect.flow_engine.run_flow``) in a thread of this already-warm process. The run is an
ordinary deployment run: created from the deployment, visible under it in the UI with states and logs.

A start (``claim=True``, the default):
  1. ``create_flow_run_from_deployment(..., idempotency_key)`` creates it ``Scheduled``. A repeat key returns the
     existing run, which is executed only if still ``Scheduled`` (never claimed by anyone).
  2. A slot of the bounded pool is taken without waiting. None free: the run stays ``Scheduled`` for the served
     runner / a worker (Prefect's path), so a burst degrades to the slow path rather than queueing here.
  3. Claim: propose ``Pending`` through orchestration, as a runner does; this honours deployment concurrency
     limits. Prefect lets only one ``Scheduled -> Pending`` through, so if the co-located runner polled the run in
     the few ms before the claim, exactly one of us executes it (measured: the runner won 1 of 60 starts).
  4. An idle worker runs ``run_flow(flow, flow_run=run, return_type="state")``. Workers are long-lived threads,
     each with its own event loop and Prefect API clients opened once (``AsyncClientContext`` and
     ``SyncClientContext``, which the engine reuses): a client per run would cost two TLS contexts (~30 ms each,
     loading the CA bundle), an API version check and a result-storage lookup on the way to the first line.
``claim=False`` creates the run born ``Pending`` instead: no runner race, but deployment limits are bypassed and a
run whose creator dies before executing it stays ``Pending`` (fast-start §5).

What Prefect does not do for runs executed this way, and this module does (fast-start §5 caveats):
  * Cancellation: a watcher thread polls the executing runs; a ``Cancelling`` (or already ``Cancelled``) run gets
    its asyncio task cancelled. The flow body is wrapped so this surfaces as ``RunCancelled``, an ordinary
    exception: the engine finishes the run itself (its ``Failed`` is refused while ``Cancelling``, and
    ``on_cancellation`` hooks run), then the executor proposes ``Cancelled``. A cancellation that lands in engine
    code ends ``Crashed`` first and is then forced to ``Cancelled``, as Prefect's runner does.
  * Crashes: ``shutdown()`` (SIGTERM/SIGINT of ``remediate serve``) suspends runs waiting for an approval that may
    be run again (``resumable``: answerable after the restart), then cancels the other executing runs without the
    cancel flag, so the engine reports ``Crashed`` and runs ``on_crashed`` hooks; a run whose thread does not finish
    within the grace period is forced ``Crashed``. After SIGKILL nobody reports: the run's lease (``leases``),
    renewed by this process from the claim to the end of the execution, lapses, and the next reconcile of any
    ``remediate serve`` sharing the store crashes the run and closes its incident, whatever state the run was left
    in (Prefect's zombie automation only catches runs that sent a heartbeat since their last state change).
  * Isolation: flow code shares this process. Providers come from ``remediation.runtime`` (a process-wide
    ``runtime.use(...)`` is visible in these threads); the executor never builds its own.

``healthy()`` is false before ``open()``, after ``shutdown()``, or when the watcher has not reached the API for
``stale_after_s``; ``start`` then (and for deployments it did not load) hands over to the fallback starter.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import queue
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any
from uuid import UUID, uuid4

from remediation import catalog
from remediation.orchestration.cancellation import Execution, RunCancelled, bind, cancellable
from remediation.orchestration.leases import RunLeases
from remediation.orchestration.prefect_starter import DeploymentStarter
from remediation.orchestration.starter import RunStarter, StartFailed

__all__ = ["RunCancelled", "WarmExecutor", "cancellable", "catalog_flows"]

log = logging.getLogger("remediation.orchestration")


def catalog_flows() -> dict[str, Any]:
    """Every runbook as ``{"<flow>/<deployment>": flow}``; deployment and flow are both named after the runbook."""
    return {f"{name}/{name}": catalog.load(name) for name in catalog.RUNBOOKS}


class WarmExecutor:
    """``RunStarter`` that executes deployment runs in this process; see the module docstring."""

    def __init__(self, flows: Mapping[str, Any] | None = None, *, max_parallel: int = 4,
                 fallback: RunStarter | None = None, poll_s: float = 1.0, stale_after_s: float = 15.0,
                 claim: bool = True, park: Callable[[str], bool] | None = None,
                 leases: RunLeases | None = None) -> None:
        self._flows_source: Mapping[str, Any] | Callable[[], Mapping[str, Any]] = (
            flows if flows is not None else catalog_flows)
        self._flows: dict[str, Any] = {}
        self._deployment_ids: dict[str, UUID] = {}
        self.max_parallel = max_parallel
        self.claim = claim
        # Runs waiting for an approval whose incident ``park(incident_id)`` accepts are suspended at shutdown instead
        # of crashed, and stay answerable across our restart (remediation.orchestration.resumable). None: never.
        self.park = park
        # Leases of the runs executed here (None: not leased; only Prefect's heartbeats watch them).
        self.leases = leases
        self.fallback: RunStarter = fallback or DeploymentStarter()
        self.poll_s = poll_s
        self.stale_after_s = stale_after_s
        self._slots = threading.BoundedSemaphore(max_parallel)
        self._workers: list[_Worker] = []
        self._idle: queue.SimpleQueue[_Worker] = queue.SimpleQueue()
        self._executions: dict[UUID, Execution] = {}
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._opened = False
        self._last_ok = 0.0
        self._client: Any = None
        self._watcher: threading.Thread | None = None

    # -- lifecycle -----------------------------------------------------------------------------------------

    def open(self) -> WarmExecutor:
        """Import the flows, read the deployment ids once, start the watcher. Missing deployments fall back."""
        from prefect import get_client

        source = self._flows_source
        flows = source() if callable(source) else source
        self._flows = {name: cancellable(flow) for name, flow in flows.items()}
        self._client = get_client(sync_client=True)
        self._client.__enter__()
        for name in self._flows:
            self._resolve(name)
        for index in range(self.max_parallel):
            worker = _Worker(self, index).start()
            self._workers.append(worker)
            self._idle.put(worker)
        self._last_ok = time.monotonic()
        self._opened = True
        self._watcher = threading.Thread(target=self._watch, name="warm-executor-watch", daemon=True)
        self._watcher.start()
        log.info("warm executor ready: %s", ", ".join(sorted(self._deployment_ids)) or "no deployments yet")
        return self

    def __enter__(self) -> WarmExecutor:
        return self.open()

    def __exit__(self, *exc_info: object) -> None:
        self.shutdown()

    def healthy(self) -> bool:
        return (self._opened and not self._stopping.is_set() and self._watcher is not None
                and self._watcher.is_alive() and all(worker.thread.is_alive() for worker in self._workers)
                and time.monotonic() - self._last_ok < self.stale_after_s)

    def loaded(self) -> set[str]:
        """Deployments this executor can run (flow imported and deployment found)."""
        return set(self._deployment_ids)

    def executing(self) -> list[UUID]:
        with self._lock:
            return list(self._executions)

    def shutdown(self, grace_s: float = 10.0, drain_s: float = 0.0) -> list[UUID]:
        """Stop taking runs; crash the ones still executing; return their ids.

        Runs waiting for an approval that ``park`` accepts are suspended first (answerable after the restart, see
        ``resumable``). ``drain_s`` then lets the other executing runs finish on their own (a run that is closing its
        incident should not be crashed for it); the rest are interrupted so the engine reports them ``Crashed``, and
        any still running after ``grace_s`` (blocked in sync code, no await point to land on) are forced ``Crashed``.
        """
        with self._lock:  # under the lock: a start racing with us either registers first or is handed back
            self._stopping.set()
            draining = list(self._executions.values())
        parked = self._park_waiting(draining)
        drain_until = time.monotonic() + drain_s
        for execution in draining:
            if execution.run.id not in parked:
                execution.done.wait(max(0.0, drain_until - time.monotonic()))
        running = [e for e in draining if not e.done.is_set() and e.run.id not in parked]
        for execution in running:
            execution.interrupt(cancel=False)
        deadline = time.monotonic() + grace_s
        for execution in draining:
            execution.done.wait(max(0.0, deadline - time.monotonic()))
        stuck = [e for e in running if not e.done.is_set()]
        for execution in stuck:  # blocked in sync code: no await point for the cancellation to land on
            self._force(execution, "Crashed", "the warm executor shut down while this run was executing")
        if self._watcher is not None:
            self._watcher.join(timeout=self.poll_s + 5)
        for worker in self._workers:
            worker.stop()
        for worker in self._workers:
            worker.thread.join(timeout=5)
        if self._client is not None:
            self._client.__exit__(None, None, None)
            self._client = None
        if running:
            log.warning("warm executor shut down with %d run(s) executing: %s", len(running),
                        ", ".join(str(e.run.id) for e in running))
        return [e.run.id for e in running]

    def _park_waiting(self, executions: list[Execution]) -> set[UUID]:
        """Suspend the runs that wait for an approval (and may be run again from the top); their tasks are cancelled
        into Prefect's ``Pause``, so the engine leaves them suspended rather than crashed."""
        if self.park is None or self._client is None or not executions:
            return set()
        from remediation.orchestration import resumable

        parked = set(resumable.park(self._client, [e.run.id for e in executions], self.park))
        for execution in executions:
            if execution.run.id in parked:
                execution.interrupt(cancel=False)
        if parked:
            log.info("suspended %d run(s) waiting for approval: answer them after the restart", len(parked))
        return parked

    # -- starting ------------------------------------------------------------------------------------------

    async def start(self, deployment: str, parameters: dict[str, Any], idempotency_key: str) -> str:
        if deployment not in self._flows or not self.healthy():
            return await self.fallback.start(deployment, parameters, idempotency_key)
        run_id = await asyncio.to_thread(self.start_sync, deployment, parameters, idempotency_key)
        if run_id is None:  # the deployment vanished since start-up
            return await self.fallback.start(deployment, parameters, idempotency_key)
        return run_id

    def start_sync(self, deployment: str, parameters: dict[str, Any], idempotency_key: str) -> str | None:
        """Blocking core of ``start`` (for sync callers); None when this executor cannot take the deployment."""
        deployment_id = self._deployment_ids.get(deployment) or self._resolve(deployment)
        if deployment_id is None or self._client is None:
            return None
        if self.claim:
            return self._start_claimed(deployment, deployment_id, parameters, idempotency_key)
        return self._start_born_pending(deployment, deployment_id, parameters, idempotency_key)

    def _create(self, deployment: str, deployment_id: UUID, parameters: dict[str, Any], idempotency_key: str,
                state: Any = None) -> Any:
        from prefect.exceptions import ObjectNotFound

        try:
            run = self._client.create_flow_run_from_deployment(
                deployment_id, parameters=parameters, idempotency_key=idempotency_key, state=state)
        except ObjectNotFound:
            self._deployment_ids.pop(deployment, None)
            return None
        except Exception as exc:
            raise StartFailed(f"could not create a run of {deployment}: {type(exc).__name__}: {exc}") from exc
        self._record_owner(run.id)
        return run

    def _record_owner(self, run_id: UUID) -> None:
        """Say in the store which API the run lives on, also when a runner executes it (it may take no lease)."""
        if self.leases is None:
            return
        try:
            self.leases.record_owner(str(run_id))
        except Exception as exc:  # the start must not fail for it: a reconcile finds the run on this API later
            log.warning("could not record the owner of run %s: %s: %s", run_id, type(exc).__name__, str(exc)[:200])

    def _start_claimed(self, deployment: str, deployment_id: UUID, parameters: dict[str, Any],
                       idempotency_key: str) -> str | None:
        from prefect.exceptions import Abort
        from prefect.states import Pending
        from prefect.utilities.engine import propose_state_sync

        run = self._create(deployment, deployment_id, parameters, idempotency_key)
        if run is None:
            return None
        run_id = str(run.id)
        if run.state is None or not run.state.is_scheduled():
            log.info("run %s (key %s) already exists in state %s: not executing it again", run_id,
                     idempotency_key, run.state.name if run.state else "none")
            return run_id
        if self._stopping.is_set() or not self._slots.acquire(blocking=False):
            log.warning("warm executor full or stopping: run %s left Scheduled for a runner", run_id)
            return run_id
        try:
            claimed = propose_state_sync(self._client, Pending(), flow_run_id=run.id)
        except Abort as exc:  # someone else (a runner, a concurrent start) claimed it first
            self._slots.release()
            log.info("run %s was claimed elsewhere (%s)", run_id, exc)
            return run_id
        except Exception:
            self._slots.release()
            log.exception("could not claim run %s: left Scheduled for a runner", run_id)
            return run_id
        if not claimed.is_pending():  # AwaitingConcurrencySlot (Scheduled) or Cancelled by a deployment limit
            self._slots.release()
            log.info("run %s not claimed: server answered %s", run_id, claimed.name)
            return run_id
        run.state = claimed
        self._launch(Execution(run=run, deployment=deployment))
        return run_id

    def _start_born_pending(self, deployment: str, deployment_id: UUID, parameters: dict[str, Any],
                            idempotency_key: str) -> str | None:
        """Variant without the runner race: runners never see a run born ``Pending``. It bypasses deployment
        concurrency limits (creation forces the initial state), and a run whose creator dies before executing it
        stays ``Pending``. Whether this call created the run is told by a one-off marker in the state message."""
        from prefect.states import Pending

        if self._stopping.is_set() or not self._slots.acquire(blocking=False):
            return None  # nothing created yet: the fallback starter takes it
        marker = f"claimed by the warm executor ({uuid4().hex})"
        try:
            run = self._create(deployment, deployment_id, parameters, idempotency_key, state=Pending(message=marker))
        except BaseException:
            self._slots.release()
            raise
        if run is None or run.state is None or run.state.message != marker:
            self._slots.release()
            if run is not None:
                log.info("run %s (key %s) already exists: not executing it again", run.id, idempotency_key)
            return str(run.id) if run is not None else None
        self._launch(Execution(run=run, deployment=deployment))
        return str(run.id)

    def _resolve(self, deployment: str) -> UUID | None:
        from prefect.exceptions import ObjectNotFound

        if deployment not in self._flows or self._client is None:
            return None
        try:
            found = self._client.read_deployment_by_name(deployment)
        except ObjectNotFound:
            log.warning("deployment %s not found: its runs go the served path", deployment)
            return None
        except Exception:
            log.exception("could not read deployment %s", deployment)
            return None
        self._deployment_ids[deployment] = found.id
        return UUID(str(found.id))

    def _launch(self, execution: Execution) -> None:
        with self._lock:
            refused = self._stopping.is_set()
            if not refused:
                self._executions[execution.run.id] = execution
        if refused:  # shutdown began after the claim: give the run back to Prefect's path instead of losing it
            self._slots.release()
            self._force(execution, "Scheduled", "handed back: the warm executor shut down before starting it")
            return
        self._take_lease(execution)
        worker = self._idle.get_nowait()  # holding a slot guarantees an idle worker
        worker.submit(execution)

    def _take_lease(self, execution: Execution) -> None:
        if self.leases is None:
            return
        run_id = str(execution.run.id)

        def lost() -> None:  # someone declared this process dead and crashed the run: stop executing it too
            execution.interrupt(cancel=False)

        try:
            self.leases.take(run_id, on_lost=lost)
        except Exception as exc:  # executing it unleased beats not executing it; Prefect's heartbeats still watch
            log.warning("could not lease run %s (%s: %s): if this process dies, only Prefect's heartbeat automation "
                        "will notice", run_id, type(exc).__name__, str(exc)[:200])

    def _release_lease(self, execution: Execution) -> None:
        if self.leases is not None:
            self.leases.release(str(execution.run.id))

    # -- executing -----------------------------------------------------------------------------------------

    async def _execute(self, execution: Execution, worker: _Worker) -> None:
        """One run on ``worker``'s loop, in its own task (so that cancelling the run never cancels the worker)."""
        try:
            await self._drive(execution)
        except BaseException as exc:  # the engine re-raises crashes (our shutdown's CancelledError among them)
            execution.error = exc
        finally:
            try:
                self._finalize(execution)
            finally:
                # Ended, crashed, cancelled or suspended (a suspended run needs no process until it is answered).
                self._release_lease(execution)
                with self._lock:
                    self._executions.pop(execution.run.id, None)
                self._idle.put(worker)
                self._slots.release()
                execution.done.set()

    async def _drive(self, execution: Execution) -> None:
        from prefect.flow_engine import run_flow

        with execution.lock:
            execution.loop = asyncio.get_running_loop()
            execution.task = asyncio.current_task()
            interrupted = execution.cancel_requested or execution.crash_requested
        if interrupted:  # cancelled or shut down between the claim and this worker starting it
            return
        bind(execution)
        outcome = run_flow(self._flows[execution.deployment], flow_run=execution.run, return_type="state")
        if inspect.isawaitable(outcome):
            await outcome

    def _finalize(self, execution: Execution) -> None:
        """Settle what the engine could not: a requested cancellation, or a run the engine left unfinished."""
        try:
            state = self._client.read_flow_run(execution.run.id).state if self._client else None
        except Exception:
            log.exception("could not read run %s after it executed", execution.run.id)
            return
        final = state is not None and state.is_final()
        if execution.cancel_requested:
            if not final or (state is not None and state.is_crashed()):
                self._force(execution, "Cancelled", "cancelled while the warm executor ran it")
        elif not final and state is not None and not state.is_paused():  # Suspended runs legitimately leave
            why = ("the warm executor shut down while this run was executing" if execution.crash_requested
                   else f"the warm executor's engine call failed: {execution.error!r}")
            self._force(execution, "Crashed", why)

    def _force(self, execution: Execution, kind: str, message: str) -> None:
        from prefect.states import Cancelled, Crashed, Scheduled

        state: Any = {"Cancelled": Cancelled, "Crashed": Crashed, "Scheduled": Scheduled}[kind](message=message)
        try:
            if self._client is not None:
                self._client.set_flow_run_state(execution.run.id, state, force=True)
                log.info("run %s marked %s: %s", execution.run.id, kind, message)
        except Exception:
            log.exception("could not mark run %s %s", execution.run.id, kind)

    # -- watching ------------------------------------------------------------------------------------------

    def _watch(self) -> None:
        """Poll executing runs for cancellation; every successful call also proves the API is reachable."""
        from prefect import get_client
        from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

        with get_client(sync_client=True) as client:
            while not self._stopping.wait(self.poll_s):
                with self._lock:
                    watched = {run_id: e for run_id, e in self._executions.items() if not e.cancel_requested}
                try:
                    if watched:
                        runs = client.read_flow_runs(
                            flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=list(watched))),
                            limit=len(watched))
                        for run in runs:
                            if run.state is not None and (run.state.is_cancelling() or run.state.is_cancelled()):
                                log.info("run %s is %s: cancelling its task", run.id, run.state.name)
                                watched[run.id].interrupt(cancel=True)
                    else:
                        error = client.api_healthcheck()
                        if error is not None:
                            raise error
                    self._last_ok = time.monotonic()
                except Exception as exc:
                    log.warning("warm executor cannot reach the Prefect API: %s", exc)


class _Worker:
    """A long-lived thread with its own event loop and Prefect clients; runs one execution at a time."""

    def __init__(self, executor: WarmExecutor, index: int) -> None:
        self._executor = executor
        self._loop: asyncio.AbstractEventLoop | None = None
        self._queue: asyncio.Queue[Execution | None] | None = None
        self._ready = threading.Event()
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._main, name=f"warm-worker-{index}", daemon=True)

    def start(self, timeout_s: float = 30.0) -> _Worker:
        self.thread.start()
        if not self._ready.wait(timeout_s) or self._loop is None:
            raise RuntimeError(f"warm executor worker did not start: {self.error!r}")
        return self

    def submit(self, execution: Execution) -> None:
        assert self._loop is not None and self._queue is not None
        self._loop.call_soon_threadsafe(self._queue.put_nowait, execution)

    def stop(self) -> None:
        if self._loop is not None and self._queue is not None:
            with contextlib.suppress(RuntimeError):  # the loop already closed
                self._loop.call_soon_threadsafe(self._queue.put_nowait, None)

    def _main(self) -> None:
        try:
            asyncio.run(self._serve())
        except BaseException as exc:
            self.error = exc
            log.exception("warm executor worker %s stopped", self.thread.name)
        finally:
            self._ready.set()

    async def _serve(self) -> None:
        from prefect.context import AsyncClientContext, SyncClientContext

        queue: asyncio.Queue[Execution | None] = asyncio.Queue()
        with SyncClientContext():
            async with AsyncClientContext():
                self._queue, self._loop = queue, asyncio.get_running_loop()
                self._ready.set()
                while (execution := await queue.get()) is not None:
                    # create_task copies this context: the run's engine finds the clients opened above.
                    await asyncio.create_task(self._executor._execute(execution, self))
