"""The ``step`` decorator: how a remediation step becomes a Prefect task (the runbooks' steps in ``tasks/`` and the
run skeleton's in ``remediation.run_report``)."""

from __future__ import annotations

from collections.abc import Callable
from typing import ParamSpec, TypeVar

from prefect import Task, task
from prefect.cache_policies import NO_CACHE

P = ParamSpec("P")
R = TypeVar("R")


def step(*, name: str, timeout_seconds: float | None = None) -> Callable[[Callable[P, R]], Task[P, R]]:
    """``@task`` for remediation steps: they act on live systems and in-process objects, so never cache."""
    return task(name=name, cache_policy=NO_CACHE, persist_result=False, timeout_seconds=timeout_seconds)
