"""The demo on virtual time: its outcome does not depend on how loaded the machine is."""

from __future__ import annotations

import multiprocessing
from collections.abc import Iterator
from multiprocessing.synchronize import Event
from pathlib import Path

import pytest
from rich.console import Console

from remediation.demo import DemoOptions, run_demo


def _spin(stop: Event) -> None:
    while not stop.is_set():
        sum(range(10_000))


@pytest.fixture
def cpu_hog() -> Iterator[None]:
    """Two processes spinning on a two-core machine for the whole test: the demo gets what is left."""
    context = multiprocessing.get_context("spawn")
    stop = context.Event()
    hogs = [context.Process(target=_spin, args=(stop,), daemon=True) for _ in range(2)]
    for hog in hogs:
        hog.start()
    yield
    stop.set()
    for hog in hogs:
        hog.join(10)
        if hog.is_alive():
            hog.terminate()


@pytest.mark.usefixtures("prefect_api", "cpu_hog")
def test_demo_recovers_beside_a_cpu_hog(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REMEDIATE_HOME", str(tmp_path))
    report = run_demo(DemoOptions(), Console(file=(tmp_path / "demo.log").open("w")))
    assert report.outcome.value == "recovered", report.escalation
    assert [(a.plan.kind, a.state.value) for a in report.actions] == [
        ("enable_maintenance", "applied"), ("rollback", "applied"), ("disable_maintenance", "applied")]
