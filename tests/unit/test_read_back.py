"""Reading a plan back: every plan kind has a read of what it changed, judged applied, not applied or "cannot tell";
and the ledger state each judgement settles an action in (pure, no platform)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any, get_args

import pytest

from remediation import read_back as rb
from remediation.call_outcome import CallOutcome
from remediation.models import (
    ActionRecord,
    ActionState,
    BlockActor,
    CreateIndexPlan,
    DisableMaintenance,
    DrainInstance,
    EnableMaintenance,
    PauseJobs,
    Phase,
    Plan,
    ReloadSignatures,
    RestartInstance,
    RestoreInstance,
    ResumeJobs,
    Rollback,
    ScaleDown,
    ScaleUp,
    SetAuthSetting,
    SetFeatureFlag,
    SetUploadAllowlist,
    TerminateBackend,
    UnblockActor,
    Verdict,
)
from remediation.outcomes import ReadBack, must_read_back, settle, uncertainty, unknown_outcomes_text
from remediation.providers.dbqueries import Presence
from remediation.providers.platform import Instance, Job, Release
from remediation.providers.security import Block, IdentityCheck, UploadAllowlist
from remediation.runtime import Providers
from remediation.settings import Settings

AT = datetime(2026, 1, 1, tzinfo=UTC)


def release(id_: str, state: str) -> Release:
    return Release(id=id_, version=f"v-{id_}", created_at=AT, state=state)


class World:
    """Every capability's read methods over plain values (what the platform shows now)."""

    def __init__(self) -> None:
        self.prefixes = ["/api/cart"]
        self.release_list = [release("dpl_new", "previous"), release("dpl_old", "current")]
        self.flags: dict[str, bool] = {"checkout-v2": False}
        self.replica_count = 4
        self.workers = {"report-export": 0, "mailer": 0}
        self.backends: dict[int, str] = {}
        self.indexes: dict[str, bool] = {"ix_kamkmserve_order_user_id": True}
        self.blocked = [Block(kind="ip", value="203.0.113.7/32", expires_at=AT)]
        self.uploads = UploadAllowlist(extensions=(".png",), mime_types=("image/png",))
        self.settings = {"role_claim": "metadata.role", "secret_key": "sk_live_[redacted]"}
        self.roles = {"user_1": "ADMIN"}
        self.targets = [Instance(id="i-1", state="unused"), Instance(id="i-2", state="healthy")]

    async def maintenance_prefixes(self) -> list[str]:
        return self.prefixes

    async def releases(self) -> list[Release]:
        return self.release_list

    async def flag(self, name: str) -> bool | None:
        return self.flags.get(name)

    async def replicas(self, service: str) -> int:
        return self.replica_count

    async def jobs(self, service: str) -> list[Job]:
        return [Job(name=name, workers=count) for name, count in self.workers.items()]

    async def backend_present(self, pid: int) -> Presence:
        return Presence(available=True, present=pid in self.backends, detail=self.backends.get(pid, ""))

    async def index_present(self, schema_name: str, name: str) -> Presence:
        valid = self.indexes.get(name)
        return Presence(available=True, present=valid is not None, valid=valid)

    async def blocks(self) -> list[Block]:
        return self.blocked

    async def allowlist(self) -> UploadAllowlist:
        return self.uploads

    async def version(self) -> str | None:
        return "ClamAV 1.0.5/27180"

    async def check(self) -> IdentityCheck:
        return IdentityCheck(available=True, settings=self.settings)

    async def user_roles(self, user_ids: list[str]) -> dict[str, str | None]:
        return {u: self.roles.get(u) for u in user_ids}

    async def instances(self, service: str) -> list[Instance]:
        return self.targets


def bundle(world: Any) -> Providers:
    return Providers(settings=Settings(), metrics=None, deploys=world, edge=world, logs=None,  # type: ignore[arg-type]
                     errors=None, approvals=None, store=None, capacity=world, jobs=world,  # type: ignore[arg-type]
                     database=world, blocks=world, uploads=world, antivirus=world, identity=world,
                     instances=world)


S = "kamkmserve"
#: One row per plan kind (and per side of a pair): what the platform in ``World`` shows for it.
PLANS: list[tuple[str, Plan, bool | None, str]] = [
    ("maintenance on", EnableMaintenance(service=S, path_prefixes=("/api/cart",)), True, "/api/cart"),
    ("maintenance on, one prefix of two", EnableMaintenance(service=S, path_prefixes=("/api/cart", "/api/orders")),
     None, "partly in effect"),
    ("maintenance off", DisableMaintenance(service=S, path_prefixes=("/api/orders",)), True, "/api/cart"),
    ("rollback to the current release", Rollback(service=S, from_release="dpl_new", to_release="dpl_old"), True,
     "v-dpl_old"),
    ("rollback not current", Rollback(service=S, from_release="dpl_old", to_release="dpl_new"), False, "v-dpl_old"),
    ("flag off as wanted", SetFeatureFlag(service=S, flag="checkout-v2", enabled=False), True, "off now"),
    ("flag never set", SetFeatureFlag(service=S, flag="other", enabled=True), False, "no value"),
    ("scaled up", ScaleUp(service=S, from_replicas=2, to_replicas=4), True, "4 replicas"),
    ("not scaled down", ScaleDown(service=S, from_replicas=4, to_replicas=2), False, "4 replicas"),
    ("jobs paused", PauseJobs(service=S, previous={"report-export": 3, "mailer": 1}), True, "mailer=0"),
    ("jobs not resumed", ResumeJobs(service=S, workers={"report-export": 3}), False, "report-export=0"),
    ("backend gone", TerminateBackend(service=S, pid=4242), True, "no longer exists"),
    ("index valid", CreateIndexPlan(service=S, table="kamkmserve_order", columns=("user_id",)), True, "valid"),
    ("ip blocked (listed as a /32)", BlockActor(service=S, actor_kind="ip", value="203.0.113.7", ttl_s=900), True,
     "is blocked"),
    ("ip still blocked", UnblockActor(service=S, actor_kind="ip", value="203.0.113.7"), False, "is blocked"),
    ("allowlist set", SetUploadAllowlist(service=S, extensions=(".png",), mime_types=("image/png",)), True,
     ".png / image/png"),
    ("reload leaves nothing to read", ReloadSignatures(service=S), None, "ClamAV 1.0.5"),
    ("setting as wanted", SetAuthSetting(service=S, setting="role_claim", value="metadata.role"), True,
     "'metadata.role'"),
    ("secret setting shown redacted", SetAuthSetting(service=S, setting="secret_key", value="sk_live_x"), None,
     "redacted"),
    ("user role as wanted", SetAuthSetting(service=S, setting="user:user_1:role", value="ADMIN"), True, "ADMIN"),
    ("drained", DrainInstance(service=S, instance_id="i-1"), True, "i-1 is unused"),
    ("restored", RestoreInstance(service=S, instance_id="i-2"), True, "i-2 is healthy"),
    ("restart leaves nothing to read", RestartInstance(service=S, instance_id="i-2"), None, "i-2 is healthy"),
]


@pytest.mark.parametrize(("case", "plan", "applied", "evidence"), [pytest.param(*r, id=r[0]) for r in PLANS])
async def test_every_plan_kind_is_read_back_from_its_capability(case: str, plan: Plan, applied: bool | None,
                                                                evidence: str) -> None:
    found = await rb.read_back(plan, bundle(World()), timeout_s=5)
    assert found.applied is applied and evidence in found.evidence, found


def test_every_plan_kind_has_a_read_back_row() -> None:
    union, *_ = get_args(Plan)  # Annotated[Union[...], discriminator]
    assert {type(plan) for _, plan, _, _ in PLANS} == set(get_args(union))


async def test_a_read_back_that_raises_cannot_tell_and_says_why() -> None:
    class Down(World):
        async def maintenance_prefixes(self) -> list[str]:
            raise ConnectionRefusedError("edge unreachable")

    found = await rb.read_back(EnableMaintenance(service=S, path_prefixes=("/a",)), bundle(Down()), timeout_s=5)
    assert found.applied is None and "edge unreachable" in found.evidence


async def test_a_read_back_that_hangs_cannot_tell_within_its_budget() -> None:
    class Hangs(World):
        async def releases(self) -> list[Release]:
            await asyncio.Event().wait()
            return []

    found = await rb.read_back(Rollback(service=S, from_release="a", to_release="b"), bundle(Hangs()), timeout_s=0.05)
    assert found.applied is None and "did not answer within 0.05s" in found.evidence


@pytest.mark.parametrize(("state", "applied"), [("draining", None), ("healthy", False)])
def test_a_draining_instance_is_not_yet_drained_and_a_serving_one_is_not(state: str, applied: bool | None) -> None:
    assert rb.judge_drained("i-1", [Instance(id="i-1", state=state)]).applied is applied


def test_an_invalid_index_left_by_a_cancelled_build_is_not_applied_and_says_to_drop_it() -> None:
    found = rb.judge_index("public", "ix", Presence(available=True, present=True, valid=False))
    assert found.applied is False and "DROP INDEX CONCURRENTLY" in found.evidence


# -- the ledger state the judgement settles in -----------------------------------------------------------------------

@pytest.mark.parametrize(("outcome", "steps", "read"), [
    (CallOutcome.ANSWER_LOST, [], True),
    (CallOutcome.NOT_SENT, ["maintenance on /a"], True),  # half in effect: /a is on
    (CallOutcome.REFUSED, ["a paused"], True),
    (CallOutcome.NOT_SENT, [], False),
    (CallOutcome.REFUSED, [], False),
])
def test_only_a_lost_answer_or_a_plan_failed_part_way_is_read_back(outcome: CallOutcome, steps: list[str],
                                                                   read: bool) -> None:
    assert must_read_back(outcome, steps) is read


@pytest.mark.parametrize(("applied", "state", "starts"), [
    (True, ActionState.APPLIED, "applied (read back: prefixes: /a)"),
    (False, ActionState.FAILED, "not applied (read back: prefixes: /a)"),
    (None, ActionState.UNKNOWN, "outcome unknown: the answer was lost"),
])
def test_the_read_back_settles_applied_not_applied_or_unknown_with_its_evidence(applied: bool | None,
                                                                                state: ActionState,
                                                                                starts: str) -> None:
    why = uncertainty(CallOutcome.ANSWER_LOST, TimeoutError("read timed out"), [])
    settled = settle(why, ReadBack(applied, "prefixes: /a"))
    assert settled.state is state and settled.error.startswith(starts) and settled.read_back == "prefixes: /a"
    assert "TimeoutError: read timed out" in settled.error


def test_an_unknown_outcome_is_escalated_with_the_plan_that_undoes_it() -> None:
    plan = Rollback(service=S, from_release="dpl_new", to_release="dpl_old", from_version="v2", to_version="v1")
    action = ActionRecord(id="act-1", phase=Phase.REMEDIATE, plan=plan, decision=Verdict.ALLOW,
                          state=ActionState.UNKNOWN, read_back="the deploys read-back failed")
    text = unknown_outcomes_text([action])
    assert "rollback v2 -> v1 (action act-1; the deploys read-back failed); undo: rollback v1 -> v2" in text
