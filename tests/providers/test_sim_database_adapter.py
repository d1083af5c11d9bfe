"""SimDatabase and SimJobs over a real simulator: the inspector's models and semantics, errors as our types."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
from kamkmserve_sim import SimConfig, SimServer

from remediation.providers.database import CreateIndex, DatabaseActionError
from remediation.providers.platform import PlatformError
from remediation.providers.sim_database import SimDatabase, SimJobs
from remediation.providers.sim_platform import ControlPlane
from tests.helpers import local_http
from tests.sim.simkit import poll


@pytest.fixture(scope="module")
def server() -> Iterator[SimServer]:
    with SimServer(SimConfig(scenario="lock-contention", rps=60, onset_s=0.0, seed=7)).start() as sim:
        poll(lambda: local_http.get(f"{sim.url}/_sim/database/locks", timeout=10).json()["waits"], what="waiters")
        yield sim


@pytest.fixture
def db(server: SimServer) -> SimDatabase:
    return SimDatabase(ControlPlane(server.url))


def state(server: SimServer) -> dict[str, object]:
    body: dict[str, object] = local_http.get(f"{server.url}/_sim/database", timeout=10).json()
    return body


async def test_reads_return_the_inspector_models_with_real_content(db: SimDatabase, server: SimServer) -> None:
    locks = await db.blocking_locks()
    assert locks.available and locks.waits
    blocker = locks.blocker_pids()[0]
    assert locks.waits[0].blockers[0].application == "kamkmserve-jobs:report-export"
    sessions = await db.long_running(0.0)
    assert sessions.available and any(s.pid == blocker and s.idle_in_transaction for s in sessions.sessions)
    assert (await db.long_running(3600.0)).sessions == ()
    scans = await db.scan_stats(1)
    assert scans.available and scans.min_seq_scans == 1 and scans.tables
    assert (await db.unused_indexes()).available
    statements = await db.top_statements(5)
    assert not statements.available and "pg_stat_statements" in statements.reason


async def test_reads_never_raise_when_the_platform_is_unreachable() -> None:
    db = SimDatabase(ControlPlane("http://127.0.0.1:9", timeout_s=2))
    for report in (await db.blocking_locks(), await db.long_running(5), await db.scan_stats(50),
                   await db.unused_indexes(), await db.top_statements(5)):
        assert report.available is False and "failed" in report.reason and "127.0.0.1:9" in report.reason
    assert (await db.long_running(5)).min_seconds == 5


async def test_a_garbled_answer_is_an_unavailable_reading(server: SimServer) -> None:
    transport = httpx.MockTransport(lambda request: httpx.Response(200, json={"waits": "lots"}))
    db = SimDatabase(ControlPlane(server.url, transport=transport))
    locks = await db.blocking_locks()
    assert locks.available is False and "not a LockReport" in locks.reason


async def test_terminate_semantics_match_postgres_inspector(db: SimDatabase, server: SimServer) -> None:
    own = state(server)["inspector_pid"]
    assert isinstance(own, int)
    with pytest.raises(DatabaseActionError, match="inspector itself"):
        await db.terminate_backend(own)
    with pytest.raises(DatabaseActionError, match="not a backend pid"):
        await db.terminate_backend(0)
    assert await db.terminate_backend(3) is False  # no such backend


async def test_a_backend_reads_present_until_terminated_and_an_index_once_built(db: SimDatabase,
                                                                                 server: SimServer) -> None:
    """The reads the gate uses to settle a terminate or an index build whose answer was lost."""
    own = state(server)["inspector_pid"]
    assert isinstance(own, int)
    seen = await db.backend_present(own)
    assert seen.available and seen.present
    assert (await db.backend_present(3)).present is False
    statement = CreateIndex(table="kamkmserve_order", columns=("status",))
    assert (await db.index_present("public", statement.name)).present is False
    await db.create_index_concurrently(statement)
    built = await db.index_present("public", statement.name)
    assert built.available and built.present and built.valid is True


async def test_presence_reads_never_raise_when_the_platform_is_unreachable() -> None:
    db = SimDatabase(ControlPlane("http://127.0.0.1:9", timeout_s=2))
    for seen in (await db.backend_present(42), await db.index_present("public", "ix")):
        assert seen.available is False and "127.0.0.1:9" in seen.reason


async def test_create_index_is_idempotent_and_a_bad_column_is_an_action_error(db: SimDatabase,
                                                                              server: SimServer) -> None:
    await db.create_index_concurrently(CreateIndex(table="kamkmserve_order", columns=("currency",)))
    await db.create_index_concurrently(CreateIndex(table="kamkmserve_order", columns=("currency",)))
    assert "ix_kamkmserve_order_currency" in str(state(server)["indexes"])
    with pytest.raises(DatabaseActionError, match='column "shoe_size" does not exist'):
        await db.create_index_concurrently(CreateIndex(table="kamkmserve_order", columns=("shoe_size",)))


async def test_terminating_the_blocker_really_frees_the_waiters(server: SimServer) -> None:
    db = SimDatabase(ControlPlane(server.url))
    blocker = (await db.blocking_locks()).blocker_pids()[0]
    assert await db.terminate_backend(blocker) is True
    assert (await db.blocking_locks()).waits == ()
    assert await db.terminate_backend(blocker) is False  # gone already


async def test_jobs_list_pause_and_resume_with_the_previous_count(server: SimServer) -> None:
    jobs = SimJobs(ControlPlane(server.url))
    listed = {j.name: j for j in await jobs.jobs("kamkmserve")}
    assert listed["report-export"].heavy and listed["report-export"].workers == 2
    assert await jobs.set_workers("kamkmserve", "report-export", 0) == 2
    assert await jobs.set_workers("kamkmserve", "report-export", 0) == 0  # idempotent
    assert await jobs.set_workers("kamkmserve", "report-export", 2) == 0


async def test_job_errors_are_platform_errors_with_the_reason(server: SimServer) -> None:
    jobs = SimJobs(ControlPlane(server.url))
    with pytest.raises(PlatformError, match="HTTP 404"):
        await jobs.set_workers("kamkmserve", "no-such-job", 0)
    with pytest.raises(PlatformError, match=r"HTTP 422.*between 0 and 50"):
        await jobs.set_workers("kamkmserve", "email-digest", 99)
    with pytest.raises(PlatformError, match=r"127\.0\.0\.1:9"):
        await SimJobs(ControlPlane("http://127.0.0.1:9", timeout_s=2)).jobs("kamkmserve")
