"""Cooperative cancellation of a flow run executed in-process (by ``warm.WarmExecutor``).

Prefect's engine treats a bare ``asyncio.CancelledError`` in a flow as a crash. When *we* cancel a run's task
because the run was cancelled in Prefect, the flow body must instead fail with an ordinary exception, so that the
engine finishes the run through its normal path while the run is ``Cancelling`` (see warm.py). Each execution's
record is bound to its task through a context variable, so only our cancellations are translated.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import threading
import types
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any


class RunCancelled(Exception):
    """Raised in a flow body whose run was cancelled from Prefect (UI, API, CLI) while this executor ran it."""


@dataclass(eq=False)
class Execution:
    """One run this process executes: what the watcher and shutdown need to interrupt it from another thread."""

    run: Any  # prefect FlowRun
    deployment: str
    lock: threading.Lock = field(default_factory=threading.Lock)
    cancel_requested: bool = False
    crash_requested: bool = False
    loop: asyncio.AbstractEventLoop | None = None
    task: asyncio.Task[Any] | None = None
    error: BaseException | None = None
    done: threading.Event = field(default_factory=threading.Event)

    def interrupt(self, *, cancel: bool) -> None:
        """Cancel the run's asyncio task from any thread; ``cancel`` says whether a person asked for it."""
        with self.lock:
            if cancel:
                self.cancel_requested = True
            else:
                self.crash_requested = True
            loop, task = self.loop, self.task
        if loop is not None and task is not None:
            with contextlib.suppress(RuntimeError):  # the loop already closed: the run is over
                loop.call_soon_threadsafe(task.cancel)


_current: ContextVar[Execution | None] = ContextVar("remediation_warm_execution", default=None)


def bind(execution: Execution) -> None:
    """Mark the current task (and the flow it is about to run) as executing ``execution``."""
    _current.set(execution)


def cancellable(flow: Any) -> Any:
    """A copy of ``flow`` whose body turns *our* cancellation into ``RunCancelled``.

    Without it the engine sees a bare ``CancelledError`` and reports ``Crashed``. Other cancellations (a flow
    timeout, anyio scopes) pass through untouched. The wrapper is built with the original function's globals so
    that Prefect's parameter validation resolves the flow's (string) annotations exactly as before.
    """
    original = flow.fn
    current, cancelled_error, run_cancelled, current_task = _current, asyncio.CancelledError, RunCancelled, \
        asyncio.current_task

    async def body(*args: Any, **kwargs: Any) -> Any:
        try:
            return await original(*args, **kwargs)
        except cancelled_error as exc:
            execution = current.get()
            if execution is None or not execution.cancel_requested:
                raise
            task = current_task()
            if task is not None:
                task.uncancel()  # handled: later awaits (state proposals, lease release) must not see it again
            raise run_cancelled("the run was cancelled while it executed") from exc

    fn = types.FunctionType(body.__code__, original.__globals__, original.__name__, None, body.__closure__)
    functools.update_wrapper(fn, original)
    copy = flow.with_options()
    copy.fn = fn
    return copy
