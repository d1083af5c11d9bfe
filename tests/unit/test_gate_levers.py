"""Each plan kind reaches its own lever through the gate; a platform without the lever refuses with NoLever."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from remediation import gate
from remediation.models import (
    ActionRecord,
    ActionState,
    Alert,
    BlockActor,
    CreateIndexPlan,
    Mode,
    PauseJobs,
    Phase,
    Plan,
    ReloadSignatures,
    ResumeJobs,
    ScaleDown,
    ScaleUp,
    SetAuthSetting,
    SetUploadAllowlist,
    Severity,
    TerminateBackend,
    UnblockActor,
    Verdict,
)
from remediation.providers.security import Block, UploadAllowlist
from remediation.runtime import Providers
from remediation.settings import Settings
from remediation.store import Store


class Levers:
    """Every lever in one object, recording calls in order."""

    def __init__(self) -> None:
        self.calls: list[tuple[Any, ...]] = []
        self.replicas = 2
        self.workers = {"report-export": 3}

    async def scale(self, service: str, replicas: int) -> int:
        self.calls.append(("scale", service, replicas))
        self.replicas = replicas
        return replicas

    async def set_workers(self, service: str, job: str, workers: int) -> int:
        self.calls.append(("set_workers", job, workers))
        previous, self.workers[job] = self.workers.get(job, 0), workers
        return previous

    async def terminate_backend(self, pid: int) -> bool:
        self.calls.append(("terminate", pid))
        return pid == 4242

    async def create_index_concurrently(self, statement: Any) -> None:
        self.calls.append(("create_index", statement.sql))

    async def block(self, kind: str, value: str, ttl_s: int, reason: str) -> Block:
        self.calls.append(("block", kind, value, ttl_s))
        return Block(kind=kind, value=value, expires_at=datetime.now(UTC) + timedelta(seconds=ttl_s))  # type: ignore[arg-type]

    async def unblock(self, kind: str, value: str) -> bool:
        self.calls.append(("unblock", kind, value))
        return True

    async def set_allowlist(self, allowlist: UploadAllowlist) -> UploadAllowlist:
        self.calls.append(("allowlist", allowlist.extensions, allowlist.mime_types))
        return UploadAllowlist(extensions=(".png",), mime_types=("image/png",))

    async def reload(self) -> bool:
        self.calls.append(("reload",))
        return True

    async def set_setting(self, name: str, value: str) -> str | None:
        self.calls.append(("setting", name, value))
        return None


@pytest.fixture
def store(tmp_path: Path) -> Store:
    s = Store(f"sqlite:///{tmp_path / 'r.db'}")
    s.migrate()
    s.open_incident(incident_id="inc-1", runbook="rb", service="svc", severity=Severity.SEV2, mode=Mode.AUTO,
                    alert=Alert(name="a", service="svc"))
    return s


def bundle(store: Store, levers: Levers | None) -> Providers:
    return Providers(settings=Settings(), metrics=None, deploys=None, edge=None, logs=None,  # type: ignore[arg-type]
                     errors=None, approvals=None, store=store, capacity=levers, jobs=levers,  # type: ignore[arg-type]
                     database=levers, blocks=levers, uploads=levers, antivirus=levers,  # type: ignore[arg-type]
                     identity=levers)  # type: ignore[arg-type]


async def applied(plan: Plan, providers: Providers) -> ActionRecord:
    return await gate.apply(ActionRecord(phase=Phase.CONTAIN, plan=plan, decision=Verdict.ALLOW), "inc-1", providers)


@pytest.mark.parametrize(("plan", "call"), [
    (ScaleUp(service="svc", from_replicas=2, to_replicas=4), ("scale", "svc", 4)),
    (ScaleDown(service="svc", from_replicas=4, to_replicas=2), ("scale", "svc", 2)),
    (PauseJobs(service="svc", previous={"report-export": 3}), ("set_workers", "report-export", 0)),
    (ResumeJobs(service="svc", workers={"report-export": 3}), ("set_workers", "report-export", 3)),
    (TerminateBackend(service="svc", pid=4242), ("terminate", 4242)),
    (CreateIndexPlan(service="svc", table="kamkmserve_order", columns=("user_id",)),
     ("create_index", 'CREATE INDEX CONCURRENTLY IF NOT EXISTS "ix_kamkmserve_order_user_id" '
                      'ON "public"."kamkmserve_order" ("user_id")')),
    (BlockActor(service="svc", actor_kind="ip", value="203.0.113.7", ttl_s=900), ("block", "ip", "203.0.113.7", 900)),
    (UnblockActor(service="svc", actor_kind="ip", value="203.0.113.7"), ("unblock", "ip", "203.0.113.7")),
    (SetUploadAllowlist(service="svc", extensions=(".png",), mime_types=("image/png",)),
     ("allowlist", (".png",), ("image/png",))),
    (ReloadSignatures(service="svc"), ("reload",)),
    (SetAuthSetting(service="svc", setting="role_claim", value="role"), ("setting", "role_claim", "role")),
])
async def test_each_plan_reaches_its_lever_and_is_recorded_applied(store: Store, plan: Plan,
                                                                   call: tuple[Any, ...]) -> None:
    levers = Levers()
    record = await applied(plan, bundle(store, levers))
    assert record.state is ActionState.APPLIED, record.error
    assert levers.calls == [call]
    assert [a.state for a in store.actions("inc-1")] == [ActionState.APPLIED]


@pytest.mark.parametrize("plan", [
    ScaleUp(service="svc", from_replicas=2, to_replicas=4),
    PauseJobs(service="svc", previous={"report-export": 3}),
    TerminateBackend(service="svc", pid=4242),
    BlockActor(service="svc", actor_kind="ip", value="203.0.113.7", ttl_s=900),
    ReloadSignatures(service="svc"),
    SetAuthSetting(service="svc", setting="role_claim", value="role"),
])
async def test_without_the_lever_the_action_fails_visibly_and_nothing_else_happens(store: Store, plan: Plan) -> None:
    record = await applied(plan, bundle(store, None))
    assert record.state is ActionState.FAILED
    assert record.error is not None and "NoLever" in record.error


async def test_a_termination_the_database_did_not_carry_out_is_a_failed_action(store: Store) -> None:
    record = await applied(TerminateBackend(service="svc", pid=7), bundle(store, Levers()))
    assert record.state is ActionState.FAILED and "was not terminated" in (record.error or "")


def test_undo_plans_restore_what_was_there() -> None:
    up = ScaleUp(service="svc", from_replicas=2, to_replicas=4)
    assert up.undo() == ScaleDown(service="svc", from_replicas=4, to_replicas=2, reason="undo")
    pause = PauseJobs(service="svc", previous={"report-export": 3, "email-digest": 1})
    assert pause.undo() == ResumeJobs(service="svc", workers={"report-export": 3, "email-digest": 1}, reason="undo")
    assert BlockActor(service="svc", actor_kind="ip", value="203.0.113.7", ttl_s=900).undo() == UnblockActor(
        service="svc", actor_kind="ip", value="203.0.113.7", reason="undo")
    tighten = SetUploadAllowlist(service="svc", extensions=(".png",), mime_types=("image/png",),
                                 previous_extensions=(".png", ".pdf"),
                                 previous_mime_types=("image/png", "application/pdf"))
    assert tighten.undo() == SetUploadAllowlist(service="svc", extensions=(".png", ".pdf"),
                                                mime_types=("image/png", "application/pdf"),
                                                previous_extensions=(".png",), previous_mime_types=("image/png",),
                                                reason="undo")
    assert TerminateBackend(service="svc", pid=1).undo() is None


def test_an_index_plan_with_an_unquotable_name_is_rejected_when_built() -> None:
    with pytest.raises(ValueError, match="not a plain identifier"):
        CreateIndexPlan(service="svc", table='orders"; DROP TABLE x; --', columns=("id",))
