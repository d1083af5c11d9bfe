"""The real approval path: the run pauses in Prefect and is answered from another thread via the CLI's code.

The pause is a real Prefect pause with its real timeout (seconds on the wall clock), answered through the Prefect API;
only the simulated app runs on virtual time (tests.flows.timekit: in-process, moved by the runbook's own waits). The
codes and Slack timestamps a test forges are taken on the wall clock, as an approver's authenticator and Slack take
them: the run checks them against the wall clock, not its own (which stands still while it is paused).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

import pytest
from prefect.client.orchestration import get_client

from flows.elevated_error_rate import elevated_error_rate
from remediation import approval_client, approvers, runtime, slack_proof
from remediation.models import Severity
from remediation.providers.prefect_approvals import PrefectApprovals
from remediation.store import Store
from tests.flows.flowkit import FAST
from tests.flows.timekit import GOOD_RELEASE, VirtualWorld

pytestmark = pytest.mark.usefixtures("prefect_api")



async def paused_world(world: VirtualWorld, **settings: Any) -> runtime.Providers:
    """The bad release serving, and providers whose approvals are the real Prefect pause (its timeout on the wall
    clock, as in production); everything else on the simulator's virtual time."""
    world.start("bad-release")
    await world.bad_release_serving()
    return world.providers(**settings).with_(approvals=PrefectApprovals(poll_interval_s=1))


Respond = Callable[[str, Store], bool]


def answer_pauses(store: Store, responses: list[Respond]) -> threading.Thread:
    """From another thread, hand the waiting step to each response in turn, once the run is paused for it.

    A response returns True when the run took its answer (the next response waits for the next pause) and False
    when the Prefect server rejected it (the same pause is offered to the next response).
    """

    def loop() -> None:
        pending = list(responses)
        answered: set[str] = set()
        deadline = time.monotonic() + 90
        while pending and time.monotonic() < deadline:
            for run in approval_client.paused_runs():
                key = f"{run.id}:{run.state.state_details.pause_key if run.state else ''}"
                if key not in answered and store.pending_steps(str(run.id)):
                    if pending.pop(0)(str(run.id), store):
                        answered.add(key)
                    break
            time.sleep(0.2)

    thread = threading.Thread(target=loop, daemon=True)
    thread.start()
    return thread


def like_the_cli(name: str, log: list[str], *, code: Callable[[], str] = str, approve: bool = True) -> Respond:
    """Answer exactly like `remediate approve RUN --as NAME --code C` does, and log the run's verdict."""

    def respond(run_id: str, store: Store) -> bool:
        try:
            found = approval_client.answer(run_id, name, approve, "from test", store, code=code())
        except approval_client.CannotAnswer as exc:
            log.append(f"not delivered:{name[:20]}:{exc}")
            return False
        log.append(f"{found.answer.value if found else 'no verdict'}:{name[:20]}")
        return True

    return respond


def like_the_ui(fields: dict[str, object], log: list[str] | None = None) -> Respond:
    """Resume with raw input as the Prefect UI's form (or anyone reaching the API) does; ``step`` is prefilled."""
    from prefect.flow_runs import resume_flow_run

    def respond(run_id: str, store: Store) -> bool:
        step = store.pending_steps(run_id)[-1].step
        try:
            resume_flow_run(UUID(run_id), run_input={"step": step, **fields})
        except RuntimeError as exc:  # the server rejects it against the stored form schema
            if log is not None:
                log.append(f"rejected: {exc}")
            return False
        return True

    return respond


def final_state(run_id: str) -> str:
    """The run's final state as the Prefect UI shows it: type and name (the name says the outcome)."""
    with get_client(sync_client=True) as client:
        run = client.read_flow_run(UUID(run_id))
    assert run.state is not None
    return f"{run.state.type.value}:{run.state.name}"


def answers(p: runtime.Providers, incident_id: str) -> list[tuple[str, str]]:
    return [(a.answer.value, a.approver) for a in p.store.approvals(incident_id)]


async def test_real_pause_is_answered_from_another_thread_the_run_refuses_an_unlisted_name_and_applies_on_a_listed_one(
    world: VirtualWorld,
) -> None:
    p = await paused_world(world)
    log: list[str] = []
    resumer = answer_pauses(p.store, [like_the_cli("mallory", log), like_the_cli("alice", log)])
    with runtime.use(p):
        report = await elevated_error_rate(**FAST)
    resumer.join(timeout=5)
    # The CLI reports what the run decided, not what the caller's environment says.
    assert log == ["refused:mallory", "approved:alice"]
    assert report["outcome"] == "recovered"
    assert (await world.state())["current_release"]["version"] == GOOD_RELEASE
    assert answers(p, report["incident_id"]) == [("refused", "mallory"), ("approved", "alice")]
    assert final_state(report["flow_run_id"]) == "COMPLETED:Recovered"
    assert p.store.pending_steps() == []  # the inbox is empty once the step is answered


async def test_real_pause_timeout_denies_and_the_run_still_completes_with_its_report(
    world: VirtualWorld,
) -> None:
    p = await paused_world(world)
    with runtime.use(p):
        report = await elevated_error_rate(**FAST, approval_timeout_s=5)
    assert report["outcome"] == "denied"
    rollback = next(a for a in report["actions"] if a["kind"] == "rollback")
    assert rollback["approval"] == "timeout" and not rollback["applied"]
    assert (await world.state())["current_release"]["version"] != GOOD_RELEASE
    assert final_state(report["flow_run_id"]) == "COMPLETED:Denied"  # the UI's run list says the outcome
    assert p.store.pending_steps() == []


async def test_a_bare_resume_without_a_decision_name_and_reason_is_rejected_and_the_run_stays_paused(
    world: VirtualWorld,
) -> None:
    from prefect.flow_runs import resume_flow_run

    p = await paused_world(world)
    log: list[str] = []

    def bare(run_id: str, store: Store) -> bool:
        try:
            resume_flow_run(UUID(run_id))
        except RuntimeError as exc:
            log.append(f"rejected: {exc}")
            return False
        return True

    resumer = answer_pauses(p.store, [bare, like_the_ui({"decision": "approve", "approver": "bob", "reason": "INC-8"})])
    with runtime.use(p):
        report = await elevated_error_rate(**FAST)
    resumer.join(timeout=5)
    assert len(log) == 1 and "'decision' is a required property" in log[0], log
    # Nothing was recorded for the bare click: the only answer is bob's, and the rollback went ahead.
    assert answers(p, report["incident_id"]) == [("approved", "bob")]
    assert report["outcome"] == "recovered"


SLACK_SECRET = "8f742231b10e8888abcd99yyyzzz85a5"
ALICE, BOB = approvers.new_secret(), approvers.new_secret()


def slack_click(user: str, *, secret: str = SLACK_SECRET, age_s: float = 0.0,
                step: str | None = None, action_ts: str = "1") -> Respond:
    """A click on the Approve button as Slack would POST it, forwarded straight to the Prefect API."""
    import json
    from urllib.parse import quote

    from prefect.flow_runs import resume_flow_run

    def respond(run_id: str, store: Store) -> bool:
        waiting = store.pending_steps(run_id)[-1].step
        payload = {"type": "block_actions", "user": {"id": user, "username": user}, "trigger_id": f"t{action_ts}",
                   "actions": [{"action_id": slack_proof.APPROVE_ACTION, "action_ts": action_ts,
                                "value": slack_proof.button_value(run_id, step or waiting)}]}
        body = "payload=" + quote(json.dumps(payload))
        ts = str(int(time.time() - age_s))
        signed = slack_proof.SignedRequest(ts, slack_proof.sign(secret, ts, body), body)
        resume_flow_run(UUID(run_id), run_input={"decision": "approve", "approver": "slack", "reason": "",
                                                 "step": waiting, "slack": signed.dumps()})
        return True

    return respond


def now_code(secret: str, shift_steps: int = 0) -> Callable[[], str]:
    return lambda: approvers.code_at(secret, datetime.now(UTC) + timedelta(seconds=30 * shift_steps))


async def test_forged_answers_are_refused_recorded_and_apply_nothing_then_two_enrolled_people_approve(
    world: VirtualWorld, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A SEV-1 rollback needs two distinct enrolled approvers. Every forged answer is refused by the run, recorded
    on the timeline with its reason, and applies nothing; the rollback applies only after alice and bob."""
    monkeypatch.setenv("TEST_TOTP_ALICE", ALICE)
    monkeypatch.setenv("TEST_TOTP_BOB", BOB)
    p = await paused_world(world, approval_timeout_s=120, approvers=["alice", "bob"],
                           slack_signing_secret=SLACK_SECRET,
                           approver_factors={"alice": {"totp_env": "TEST_TOTP_ALICE", "slack_user": "UALICE"},
                                             "bob": {"totp_env": "TEST_TOTP_BOB"}})
    version_before = (await world.state())["current_release"]["version"]
    log: list[str] = []
    alice_code = now_code(ALICE)()
    forged: list[Respond] = [
        like_the_cli("alice", log),  # no code
        like_the_cli("alice", log, code=lambda: "000000" if alice_code != "000000" else "111111"),  # wrong code
        like_the_cli("alice", log, code=now_code(ALICE, shift_steps=3)),  # a code from 90 s in the future
        like_the_cli("mallory", log, code=now_code(BOB)),  # not on the list
        like_the_cli("m" * 256, log, code=now_code(ALICE)),  # over-long name: the server refuses it
        like_the_ui({"decision": "approve", "approver": "bob", "reason": "r", "code": now_code(BOB)(),
                     "step": "inc-other/act-other/0123456789abcdef"}),  # an answer for another step
        slack_click("UALICE", secret="not-the-signing-secret"),  # bad signature
        slack_click("UALICE", age_s=400),  # stale timestamp
        slack_click("UMALLORY"),  # a Slack user nobody enrolled
    ]
    counted = [like_the_cli("alice", log, code=lambda: alice_code)]  # 1 of 2
    replays = [like_the_cli("alice", log, code=lambda: alice_code),  # the same code again
               like_the_ui({"decision": "approve", "approver": "alice", "reason": "r", "code": alice_code})]
    second = [like_the_cli("bob", log, code=now_code(BOB))]  # 2 of 2: the rollback applies
    resumer = answer_pauses(p.store, [*forged, *counted, *replays, *second])
    with runtime.use(p):
        report = await elevated_error_rate(**FAST, severity=Severity.SEV1)
    resumer.join(timeout=5)

    recorded = p.store.approvals(report["incident_id"])
    refused = [a for a in recorded if a.answer.value == "refused"]
    approved = [a for a in recorded if a.answer.value == "approved"]
    reasons = " | ".join(a.reason for a in refused)
    assert len(refused) == len(forged) + len(replays), reasons
    assert [a.approver for a in approved] == ["alice", "bob"]  # forged tried: 11, accepted: 0
    for expected in ("no code", "wrong or expired code", "not on the approver list", "Prefect API refused",
                     "not the step waiting here", "Slack signature does not match", "stale",
                     "Slack user UMALLORY is not an enrolled approver", "already used"):
        assert expected in reasons, expected
    timeline = " | ".join(f"{e.event} {e.detail}" for e in p.store.timeline(report["incident_id"]))
    assert timeline.count("approval refused by") == len(refused) - 1  # the server-refused one has no run event
    # Nothing applied before the second approval: the rollback is the only change, after bob's answer.
    rollback = next(a for a in report["actions"] if a["kind"] == "rollback")
    assert rollback["applied"] and "alice" in rollback["approver"] and "bob" in rollback["approver"]
    assert version_before != GOOD_RELEASE and (await world.state())["current_release"]["version"] == GOOD_RELEASE
    assert log[:4] == ["refused:alice", "refused:alice", "refused:alice", "refused:mallory"]
    # The over-long name never reached the run: the Prefect server refused it against the form's limits.
    assert log[4].startswith(f"not delivered:{'m' * 20}:") and "Validation failed" in log[4], log[4]
