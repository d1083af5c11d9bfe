"""Fixtures for runbook scenario tests: a real simulator over HTTP, a real store, scripted approvals."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from kamkmserve_sim import SimConfig, SimServer

from remediation import composition, runtime
from remediation.models import Mode
from remediation.providers.approvals import Scripted, ScriptedApprovals
from remediation.providers.capabilities import Approvals
from remediation.settings import Settings
from tests.flows.timekit import VirtualWorld


@pytest.fixture
def sim() -> Iterator[Callable[..., SimServer]]:
    started: list[SimServer] = []

    def start(scenario: str = "bad-release", **overrides: Any) -> SimServer:
        config = SimConfig(**{"scenario": scenario, "rps": 200.0, "onset_s": 0.2, "seed": 7, **overrides})
        server = SimServer(config).start()
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


@pytest.fixture
def providers(tmp_path: Path) -> Callable[..., runtime.Providers]:
    def build(app_url: str, *, answers: list[Scripted] | None = None, approvals: Approvals | None = None,
              **settings: Any) -> runtime.Providers:
        base = {
            "app_url": app_url, "platform": "sim", "sim_url": app_url, "home": tmp_path, "mode": Mode.AUTO,
            "approvers": ["alice", "bob"], "approval_timeout_s": 30, "approval_poll_s": 1,
            "verify_interval_s": 0.3, "verify_consecutive": 3, "verify_deadline_s": 20.0,
            "metrics_budget_per_min": 100,
        }
        live = composition.connect(Settings(**{**base, **settings}))
        return live.with_(approvals=approvals or ScriptedApprovals(answers or []))

    return build


@pytest.fixture
def world(tmp_path: Path) -> Iterator[VirtualWorld]:
    """The simulator in-process on virtual time (tests.flows.timekit); ``world.start(scenario)`` starts it."""
    built = VirtualWorld(tmp_path)
    yield built
    built.close()
