"""Fixtures for orchestration tests: the tiny flow deployed on the session's real Prefect API, a warm executor."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from remediation.orchestration.warm import WarmExecutor
from tests.orchestration.orch_flows import tiny
from tests.orchestration.orchkit import TINY_DEPLOYMENT


@pytest.fixture(scope="session")
def tiny_deployment(prefect_api: None) -> str:
    """``orch-tiny/tiny`` registered like a served deployment (no work pool); module entrypoint for children."""
    from prefect.deployments.runner import RunnerDeployment
    from prefect.types.entrypoint import EntrypointType

    RunnerDeployment.from_flow(tiny, name="tiny", entrypoint_type=EntrypointType.MODULE_PATH).apply()
    return TINY_DEPLOYMENT


@pytest.fixture
def executor(tiny_deployment: str) -> Iterator[WarmExecutor]:
    warm = WarmExecutor({tiny_deployment: tiny}, max_parallel=4, poll_s=0.2).open()
    yield warm
    warm.shutdown(grace_s=5)
