"""``POST /slack/interactions`` over real HTTP (uvicorn): a signed click from an enrolled approver is forwarded once,
unchanged, to its run, and the clicker hears the run's verdict; unsigned, stale, unenrolled and malformed clicks are
refused with JSON, forwarded nowhere, and (when they name a waiting step) put on the incident's timeline.

The run's side is stood in for by :class:`RunStandIn`: it judges a forwarded answer with the run's own judge
(remediation.ballot.StepBallot) instead of going through a paused Prefect run (that path has its own test)."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from datetime import timedelta
from typing import Any
from urllib.parse import urlencode

import httpx
import pytest
from pydantic import SecretStr

from remediation import approvers, slack_proof
from remediation.approvers import ApproverFactor
from remediation.ballot import StepBallot
from remediation.intake import create_app
from remediation.intake.slack_interactions import AnswerRelay
from remediation.models import Alert, Approval, ApprovalAnswer, Mode, Severity
from remediation.providers.approvals import Answer
from remediation.providers.clock import VirtualClock
from remediation.store import PendingStep, Store
from tests.helpers import local_http
from tests.intake.intakekit import T0, FakeStarter, serve_app, settings

SECRET = "slack-signing-secret-for-tests"
URL = "/slack/interactions"
RUN_ID = "6f1c2d3e-4b5a-4c7d-8e9f-0a1b2c3d4e5f"
INCIDENT = "inc-42"
STEP = approvers.step_binding(INCIDENT, "act-1", "0123456789abcdef0123")
ALICE_SLACK = "U024ALICE"
RESPONSE_URL = "https://hooks.slack.com/actions/T0KAMKM/1234567890/responseTokenForTests"
NOW = T0.timestamp()


# -- a click as Slack sends it ------------------------------------------------------------------------------------


def click_body(*, user_id: str = ALICE_SLACK, action_id: str = slack_proof.APPROVE_ACTION,
               value: str | None = None, response_url: str = RESPONSE_URL) -> str:
    """A ``block_actions`` interaction, form-encoded as Slack posts it (trimmed to the fields that matter)."""
    payload = {
        "type": "block_actions",
        "user": {"id": user_id, "username": "alice", "name": "alice", "team_id": "T0KAMKM"},
        "api_app_id": "A0REMEDIATE", "trigger_id": "8174.3012.5d3c", "team": {"id": "T0KAMKM", "domain": "kamkm"},
        "container": {"type": "message", "message_ts": "1764172990.000100", "channel_id": "C0INCIDENTS"},
        "channel": {"id": "C0INCIDENTS", "name": "incidents"}, "response_url": response_url,
        "actions": [{"type": "button", "action_id": action_id, "block_id": f"approval:{INCIDENT}",
                     "text": {"type": "plain_text", "text": "Approve"}, "action_ts": "1764172991.246810",
                     "value": value if value is not None else slack_proof.button_value(RUN_ID, STEP)}],
    }  # fmt: skip
    return urlencode({"payload": json.dumps(payload)})


def signed_headers(body: str, *, at: float = NOW, secret: str = SECRET) -> dict[str, str]:
    timestamp = str(int(at))
    return {"X-Slack-Request-Timestamp": timestamp, "X-Slack-Signature": slack_proof.sign(secret, timestamp, body),
            "Content-Type": "application/x-www-form-urlencoded"}


def post(base: str, body: str, headers: dict[str, str]) -> httpx.Response:
    return local_http.post(base + URL, content=body.encode(), headers=headers, timeout=10)


# -- the run's side, stood in for ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Forwarded:
    flow_run_id: str
    approver: str
    approve: bool
    reason: str
    slack: str


class RunStandIn:
    """Receives what serve forwards and judges it as the run would; ``hold`` keeps the verdict back until released."""

    def __init__(self, step: PendingStep, store: Store, clock: VirtualClock, run_settings: Any) -> None:
        self.forwarded: list[Forwarded] = []
        self.release = threading.Event()
        self.release.set()
        self._ballot = StepBallot(step, settings=run_settings, store=store, clock=clock,
                                  on_answer=lambda verdict: store.record_approval(step.incident_id, verdict,
                                                                                  action_id=step.action_id))

    def deliver(self, flow_run_id: str, approver: str, approve: bool, reason: str, store: Store, *,
                wait_s: float, slack: str) -> Approval | None:
        self.forwarded.append(Forwarded(flow_run_id, approver, approve, reason, slack))
        assert self.release.wait(wait_s), "the test never released the verdict"
        return self._ballot.judge(Answer(approve=approve, approver=approver, reason=reason, step=STEP,
                                         answer_id=f"ans-{len(self.forwarded)}", slack=slack))


class Clicker:
    """What was posted to clicks' response_url; ``wait`` blocks until the n-th message arrives."""

    def __init__(self) -> None:
        self.told: list[tuple[str, str]] = []
        self._arrived = threading.Condition()

    async def tell(self, response_url: str, text: str) -> None:
        with self._arrived:
            self.told.append((response_url, text))
            self._arrived.notify_all()

    def wait(self, count: int = 1, timeout_s: float = 10.0) -> list[tuple[str, str]]:
        with self._arrived:
            assert self._arrived.wait_for(lambda: len(self.told) >= count, timeout_s), f"told only {self.told}"
            return list(self.told)


def server_settings(**overrides: Any) -> Any:
    values: dict[str, Any] = {"slack_signing_secret": SECRET, "approvers": ["alice", "bob"],
                              "approver_factors": {"alice": ApproverFactor(slack_user=ALICE_SLACK)},
                              "platform": "aws", **overrides}
    return settings(**values)


@pytest.fixture
def waiting(store: Store) -> PendingStep:
    """Incident inc-42 whose run RUN_ID waits for approval of one step."""
    store.open_incident(incident_id=INCIDENT, runbook="elevated-error-rate", service="kamkmserve",
                        severity=Severity.SEV2, mode=Mode.APPROVE, flow_run_id=RUN_ID,
                        alert=Alert(name="HighErrorRate", service="kamkmserve"))
    step = PendingStep(action_id="act-1", incident_id=INCIDENT, flow_run_id=RUN_ID, step=STEP,
                       runbook="elevated-error-rate", service="kamkmserve", severity="sev2", phase="contain",
                       summary="enable maintenance on /api/orders", risk="reversible", why="5xx after deploy",
                       evidence=(), undo="disable maintenance on /api/orders", statement=None, needed=1,
                       requested_at=T0, deadline=T0 + timedelta(minutes=15))
    store.open_pending(step)
    return step


@pytest.fixture
def run(waiting: PendingStep, store: Store, clock: VirtualClock) -> RunStandIn:
    return RunStandIn(waiting, store, clock, server_settings())


@pytest.fixture
def clicker() -> Clicker:
    return Clicker()


Serve = Callable[..., AbstractContextManager[str]]


@pytest.fixture
def serve(store: Store, clock: VirtualClock, run: RunStandIn, clicker: Clicker) -> Serve:
    """``with serve(**settings_overrides) as base_url``: the receiver on a real port, forwarding to ``run``."""

    @contextmanager
    def start(*, reply_within_s: float = 5.0, **overrides: Any) -> Iterator[str]:
        relay = AnswerRelay(deliver=run.deliver, tell_clicker=clicker.tell, reply_within_s=reply_within_s,
                            verdict_wait_s=10.0)
        app = create_app(server_settings(**overrides), store, FakeStarter(), clock=clock, slack_relay=relay)
        with serve_app(app) as url:
            yield url

    return start


def refusals_on_timeline(store: Store) -> list[str]:
    return [e.event for e in store.timeline(INCIDENT) if e.event.startswith("approval refused")]


# -- refused before the run -------------------------------------------------------------------------------------


def test_a_click_with_a_bad_signature_is_401_forwarded_nowhere_and_put_on_the_incident_timeline(
        serve: Serve, store: Store, run: RunStandIn) -> None:
    body = click_body()
    with serve() as base:
        response = post(base, body, signed_headers(body, secret="not-the-app-secret"))
    assert response.status_code == 401 and response.json()["error"] == "unauthorized"
    assert "signature does not match" in response.json()["detail"]
    assert run.forwarded == []
    assert refusals_on_timeline(store) == [
        "approval refused: Slack request not proven: the Slack signature does not match the request"]
    [refused] = store.approvals(INCIDENT)
    assert refused.answer is ApprovalAnswer.REFUSED and refused.approver == "slack" and refused.via == "slack"


def test_a_properly_signed_click_six_minutes_old_is_401_as_stale_and_recorded(
        serve: Serve, store: Store, run: RunStandIn) -> None:
    body = click_body()
    with serve() as base:
        response = post(base, body, signed_headers(body, at=NOW - 360))
    assert response.status_code == 401 and "stale" in response.json()["detail"]
    assert run.forwarded == []
    [event] = refusals_on_timeline(store)
    assert event.startswith("approval refused: Slack request not proven: the Slack request is stale: signed 360s ago")


def test_a_click_without_slack_signature_headers_is_401_and_recorded(
        serve: Serve, store: Store, run: RunStandIn) -> None:
    body = click_body()
    with serve() as base:
        response = post(base, body, {"Content-Type": "application/x-www-form-urlencoded"})
    assert response.status_code == 401
    assert response.json()["detail"] == "missing X-Slack-Request-Timestamp and X-Slack-Signature headers"
    assert run.forwarded == []
    assert len(refusals_on_timeline(store)) == 1


def test_an_unproven_click_for_a_step_that_is_not_waiting_writes_nothing(
        serve: Serve, store: Store, run: RunStandIn) -> None:
    body = click_body(value=slack_proof.button_value(RUN_ID, f"{INCIDENT}/act-9/ffffffffffffffff"))
    with serve() as base:
        response = post(base, body, signed_headers(body, secret="forged"))
    assert response.status_code == 401
    assert store.approvals(INCIDENT) == [] and refusals_on_timeline(store) == []


def test_a_signed_click_from_a_slack_user_who_is_not_enrolled_is_refused_recorded_and_not_forwarded(
        serve: Serve, store: Store, run: RunStandIn, clicker: Clicker) -> None:
    body = click_body(user_id="U0MALLORY")
    with serve() as base:
        response = post(base, body, signed_headers(body))
    assert response.status_code == 200
    reply = response.json()
    assert reply["response_type"] == "ephemeral" and "U0MALLORY" in reply["text"] and "not an enrolled" in reply["text"]
    assert run.forwarded == []
    assert refusals_on_timeline(store) == ["approval refused: Slack request from U0MALLORY, who is not an enrolled "
                                           "approver"]
    [refused] = store.approvals(INCIDENT)
    assert refused.answer is ApprovalAnswer.REFUSED and refused.approver == "slack:U0MALLORY"
    assert clicker.wait() == [(RESPONSE_URL, reply["text"])]  # Slack only shows the clicker what is posted there


def test_without_a_signing_secret_every_click_is_refused_with_503(serve: Serve, run: RunStandIn) -> None:
    body = click_body()
    with serve(slack_signing_secret=None) as base:
        response = post(base, body, signed_headers(body))
    assert response.status_code == 503
    assert response.json()["error"] == "slack interactions not configured"
    assert "REMEDIATE_SLACK_SIGNING_SECRET" in response.json()["detail"]
    assert run.forwarded == []


@pytest.mark.parametrize("body", [
    "not a form at all",
    urlencode({"payload": "{not json"}),
    urlencode({"payload": json.dumps(["a", "list"])}),
    urlencode({"other": "field"}),
    click_body(action_id="someone_elses_button"),
    click_body(value="not-our-json"),
    click_body(value=json.dumps({"run": RUN_ID})),
], ids=["not-a-form", "payload-not-json", "payload-not-object", "no-payload", "other-action", "value-not-json",
        "value-without-step"])  # fmt: skip
def test_a_body_that_is_not_a_click_on_our_buttons_is_a_400_json_error(
        serve: Serve, store: Store, run: RunStandIn, body: str) -> None:
    with serve() as base:
        response = post(base, body, signed_headers(body))
    assert response.status_code == 400, response.text
    assert response.json()["error"] == "not a remediate button" and response.json()["detail"]
    assert run.forwarded == [] and store.approvals(INCIDENT) == []


def test_a_body_that_is_not_utf8_is_a_400_json_error(serve: Serve, run: RunStandIn) -> None:
    with serve() as base:
        response = local_http.post(base + URL, content=b"payload=\xff\xfe", headers={"Content-Type": "text/plain"})
    assert response.status_code == 400 and "UTF-8" in response.json()["detail"]


def test_a_body_over_the_limit_is_413(serve: Serve, run: RunStandIn) -> None:
    body = click_body() + "&padding=" + "x" * 2048
    with serve(intake_max_body_bytes=1024) as base:
        response = post(base, body, signed_headers(body))
    assert response.status_code == 413 and run.forwarded == []


def test_a_click_on_the_link_button_is_acknowledged_and_ignored(serve: Serve, run: RunStandIn) -> None:
    body = click_body(action_id="open-run", value=f"{INCIDENT}:open")
    with serve() as base:
        response = post(base, body, signed_headers(body))
    assert response.status_code == 200 and response.json()["status"] == "ignored"
    assert run.forwarded == []


def test_a_click_for_a_step_no_longer_waiting_is_told_so_and_not_forwarded(
        serve: Serve, store: Store, run: RunStandIn, waiting: PendingStep) -> None:
    store.close_pending(waiting.action_id)
    body = click_body()
    with serve() as base:
        response = post(base, body, signed_headers(body))
    assert response.status_code == 200
    assert response.json()["response_type"] == "ephemeral" and "no longer waiting" in response.json()["text"]
    assert run.forwarded == []


# -- forwarded to the run ---------------------------------------------------------------------------------------


def test_an_enrolled_approvers_click_is_forwarded_once_unchanged_and_the_reply_carries_the_runs_verdict(
        serve: Serve, store: Store, run: RunStandIn, clicker: Clicker) -> None:
    body = click_body()
    headers = signed_headers(body)
    with serve() as base:
        response = post(base, body, headers)
    assert response.status_code == 200, response.text
    [forwarded] = run.forwarded
    assert (forwarded.flow_run_id, forwarded.approver, forwarded.approve) == (RUN_ID, "alice", True)
    assert forwarded.reason == "Slack alice"
    # Exactly what Slack signed, so the run can check it again with its own copy of the secret.
    request = slack_proof.SignedRequest.loads(forwarded.slack)
    assert request == slack_proof.SignedRequest(headers["X-Slack-Request-Timestamp"],
                                                headers["X-Slack-Signature"], body)
    assert slack_proof.verify(request, SecretStr(SECRET), NOW).user_id == ALICE_SLACK
    reply = response.json()
    assert reply["response_type"] == "ephemeral" and reply["text"].startswith("Approved by alice (1 of 1")
    assert clicker.wait() == [(RESPONSE_URL, reply["text"])]
    [counted] = store.approvals(INCIDENT)
    assert counted.answer is ApprovalAnswer.APPROVED and counted.via == "slack"


def test_a_deny_click_is_forwarded_as_a_deny(serve: Serve, run: RunStandIn) -> None:
    body = click_body(action_id=slack_proof.DENY_ACTION)
    with serve() as base:
        response = post(base, body, signed_headers(body))
    [forwarded] = run.forwarded
    assert forwarded.approve is False
    assert response.json()["text"].startswith("Denied by alice")


def test_a_replayed_click_reaches_the_run_which_refuses_it_and_the_clicker_is_told(
        serve: Serve, store: Store, run: RunStandIn) -> None:
    body = click_body()
    headers = signed_headers(body)
    with serve() as base:
        post(base, body, headers)
        replay = post(base, body, headers)
    assert len(run.forwarded) == 2  # serve keeps no state of its own: the run's spent-proof check is the guard
    assert replay.json()["text"].startswith("Refused by the run: this Slack click was already counted")


def test_a_slow_verdict_is_acknowledged_at_once_and_posted_to_the_clicker_when_it_comes(
        serve: Serve, run: RunStandIn, clicker: Clicker) -> None:
    run.release.clear()
    body = click_body()
    with serve(reply_within_s=0.1) as base:
        response = post(base, body, signed_headers(body))
        assert response.status_code == 200
        assert response.json()["text"] == "Received; the run is judging it."
        assert clicker.told == []
        run.release.set()
        [(url, text)] = clicker.wait()
    assert url == RESPONSE_URL and text.startswith("Approved by alice")
    assert len(run.forwarded) == 1


def test_a_response_url_outside_slack_is_never_posted_to(serve: Serve, run: RunStandIn, clicker: Clicker) -> None:
    body = click_body(response_url="https://attacker.example/collect")
    with serve() as base:
        response = post(base, body, signed_headers(body))
    # Checked once the server has stopped: it finishes a reply's follow-up work before it exits.
    assert response.status_code == 200 and len(run.forwarded) == 1
    assert clicker.told == []
