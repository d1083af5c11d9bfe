"""``POST /slack/interactions``: a click on an approval message's Approve/Deny buttons, carried to the waiting run.

Slack posts every interaction of the app here (its Interactivity request URL) as ``payload=<url-encoded JSON>``,
signed with the app's signing secret (remediation.slack_proof). serve checks what it can before it wakes a run,
and answers in the receiver's JSON (remediation.intake.app):

* no signing secret configured: 503, every click refused (never accepted unchecked);
* over the body limit: 413; a body that is not a click on our buttons: 400. The message's link button is posted
  here too when it is clicked: that one is acknowledged (200) and ignored;
* a missing or wrong signature, or a stale timestamp: 401, nothing forwarded. If the unverified payload names a
  step that is waiting, the refusal is recorded on that incident (approvals and timeline) so that the attempt is
  visible; nothing else in an unverified payload is believed;
* a verified click from a Slack user who is not an enrolled approver: refused and recorded the same way;
* a verified click for a step that no longer waits: told so;
* otherwise the signed request is forwarded unchanged to the run (:func:`remediation.approval_client.answer`). The
  run checks it again with its own copy of the secret and decides (remediation.ballot): checking here first only
  spares the runs junk. A run that cannot be answered is told to the clicker; any other failure within the reply
  window is a 503 (``guarded``), logged.

Slack wants an answer within 3 s and ignores the body of a reply to a button click: the clicker only sees what is
posted to the payload's ``response_url``. So the reply (``{"response_type": "ephemeral", "text": ...}``, for logs
and callers by hand) waits briefly for the run's verdict, and the verdict, or that none came, is posted to
``response_url`` once the reply is sent, as an ephemeral message only the clicker sees.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol
from urllib.parse import parse_qs

import httpx
from starlette.background import BackgroundTask
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from remediation import approval_client, approvers, slack_proof
from remediation.intake.wire import IntakeError, read_body
from remediation.models import Approval, ApprovalAnswer, Phase, TimelineEntry
from remediation.notify.slack import OPEN_RUN_ACTION
from remediation.providers.capabilities import Clock
from remediation.settings import Settings
from remediation.store import PendingStep, Store

log = logging.getLogger("remediation.intake")

TIMESTAMP_HEADER = "X-Slack-Request-Timestamp"
SIGNATURE_HEADER = "X-Slack-Signature"
_CHALLENGE = 'HMAC-SHA256 header="X-Slack-Signature"'
#: Where Slack's response_url points (Slack, GovSlack). Anything else is not posted to, even from a signed
#: payload: serve must not become a way to make requests elsewhere should the signing secret leak.
_RESPONSE_URL_HOSTS = ("hooks.slack.com", "hooks.slack-gov.com")
_RUN_ID_MAX = 64  # a flow run id is a 36-character UUID; longer claims are not looked up
_REFUSED_BY_SERVE = "refused by serve at /slack/interactions: nothing was forwarded to the run"


class DeliverAnswer(Protocol):
    """Carries one answer to a paused run and returns its verdict, or None if none came within ``wait_s``."""

    def __call__(self, flow_run_id: str, approver: str, approve: bool, reason: str, store: Store, *,
                 wait_s: float, slack: str) -> Approval | None: ...


#: Posts ``text`` to a click's ``response_url`` (``(response_url, text)``).
TellClicker = Callable[[str, str], Awaitable[None]]


async def post_to_response_url(response_url: str, text: str) -> None:
    """An ephemeral message to the clicker, next to the approval message (which stays as it is)."""
    message = {"response_type": "ephemeral", "replace_original": False, "text": text}
    async with httpx.AsyncClient(timeout=5.0) as client:
        response = await client.post(response_url, json=message)
    if response.status_code != 200:  # the URL carries a token: it is never logged
        log.warning("Slack response_url answered HTTP %s: %s", response.status_code, response.text[:100])


@dataclass(frozen=True)
class AnswerRelay:
    """How a verified click reaches its run and how the clicker hears back; injected so tests can watch both."""

    deliver: DeliverAnswer = approval_client.answer
    tell_clicker: TellClicker = post_to_response_url
    reply_within_s: float = 2.0  # below Slack's 3 s, or Slack shows the clicker an error
    verdict_wait_s: float = 30.0  # how long the follow-up to response_url waits for the run's verdict


def slack_interactions_endpoint(settings: Settings, store: Store, clock: Clock,
                                relay: AnswerRelay | None = None) -> Callable[[Request], Awaitable[Response]]:
    """The endpoint (wrap it in the receiver's ``guarded``)."""
    limit = settings.intake_max_body_bytes
    the_relay = relay or AnswerRelay()
    if settings.slack.signing_secret is None:
        log.warning("no Slack signing secret configured: Slack button clicks will be refused")

    async def endpoint(request: Request) -> Response:
        if settings.slack.signing_secret is None:  # refuse before reading a body nobody can check
            raise IntakeError(503, "slack interactions not configured",
                              "no Slack signing secret: set REMEDIATE_SLACK_SIGNING_SECRET (or [secrets] "
                              "slack_signing_secret) to the Slack app's signing secret")
        body = _text(await read_body(request, limit))
        payload = _payload(body)
        try:
            claimed = slack_proof.parse_click(body)
        except slack_proof.SlackProofError as exc:
            if payload is not None and _action_id(payload) == OPEN_RUN_ACTION:
                # Slack posts link-button clicks too and shows the clicker an error unless they get a 200.
                return JSONResponse({"status": "ignored", "detail": "a link button: Slack opens the run itself"})
            raise IntakeError(400, "not a remediate button", str(exc)) from None
        signed = slack_proof.SignedRequest(timestamp=request.headers.get(TIMESTAMP_HEADER, "").strip(),
                                           signature=request.headers.get(SIGNATURE_HEADER, "").strip(), body=body)
        now = clock.now()
        click = await _proven(signed, claimed, settings, store, now)
        response_url = _response_url(payload)
        name = _enrolled_name(settings, click.user_id)
        if name is None:
            user = approvers.shown(click.user_id, 40)
            await run_in_threadpool(_refuse_if_waiting, store, click, f"slack:{user}"[: approvers.NAME_MAX],
                                    f"Slack request from {user}, who is not an enrolled approver", now)
            return _tell(the_relay, response_url, f"You ({user}) are not an enrolled approver, so your click does "
                         "not count: an approver's Slack user id goes in remediate.toml [approvers.NAME] slack_user.",
                         status="refused")
        if await run_in_threadpool(_waiting, store, click.flow_run_id, click.step) is None:
            return _tell(the_relay, response_url, "This step is no longer waiting: it was answered, timed out, or "
                         "its run ended.", status="not waiting")
        return await _forward(the_relay, click, name, signed, store, response_url)

    return endpoint


async def _proven(signed: slack_proof.SignedRequest, claimed: slack_proof.SlackClick, settings: Settings,
                  store: Store, now: datetime) -> slack_proof.SlackClick:
    """The click, if Slack signed it lately; else 401, with the attempt recorded on the step it names if that step
    waits. Of the unproven claim only the run and step are used, and only to find a step that really waits."""
    missing = [header for header, value in ((TIMESTAMP_HEADER, signed.timestamp), (SIGNATURE_HEADER, signed.signature))
               if not value]
    try:
        if missing:
            raise slack_proof.SlackProofError(f"missing {' and '.join(missing)} header{'s' * (len(missing) > 1)}")
        # The body already parsed as our button, so what fails here is the signature or the time.
        return slack_proof.verify(signed, settings.slack.signing_secret, now.timestamp())
    except slack_proof.SlackProofError as exc:
        await run_in_threadpool(_refuse_if_waiting, store, claimed, "slack", f"Slack request not proven: {exc}", now)
        log.warning("POST /slack/interactions: refused an unproven request: %s", exc)
        raise IntakeError(401, "unauthorized", str(exc), headers={"WWW-Authenticate": _CHALLENGE}) from None


async def _forward(relay: AnswerRelay, click: slack_proof.SlackClick, approver: str,
                   signed: slack_proof.SignedRequest, store: Store, response_url: str | None) -> Response:
    """Carry the signed request, unchanged, to the run; reply with its verdict if it comes within Slack's patience,
    else say it is being judged and post the verdict to the clicker when it comes."""
    delivery = asyncio.create_task(run_in_threadpool(
        relay.deliver, click.flow_run_id, approver, click.approve, f"Slack {click.user_name or click.user_id}",
        store, wait_s=relay.verdict_wait_s, slack=signed.dumps()))
    done, _ = await asyncio.wait({delivery}, timeout=relay.reply_within_s)
    if done:
        return _tell(relay, response_url, _verdict_text(delivery), status="delivered")
    follow_up = BackgroundTask(_tell_verdict_when_judged, relay, response_url, delivery)
    return JSONResponse({"response_type": "ephemeral", "text": "Received; the run is judging it.",
                         "status": "delivered"}, background=follow_up)


# -- reading the request ---------------------------------------------------------------------------------------


def _text(raw: bytes) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise IntakeError(400, "not a remediate button", f"body is not UTF-8: {exc.reason} at byte {exc.start}") \
            from None


def _payload(body: str) -> dict[str, Any] | None:
    """The ``payload`` JSON object of a form-encoded body, or None; believed only once the signature holds."""
    try:
        payload = json.loads(parse_qs(body, strict_parsing=True)["payload"][0])
    except (ValueError, KeyError, IndexError):
        return None
    return payload if isinstance(payload, dict) else None


def _action_id(payload: dict[str, Any]) -> str | None:
    actions = payload.get("actions")
    if isinstance(actions, list) and actions and isinstance(actions[0], dict):
        action_id = actions[0].get("action_id")
        return action_id if isinstance(action_id, str) else None
    return None


def _response_url(payload: dict[str, Any] | None) -> str | None:
    url = payload.get("response_url") if payload else None
    if not isinstance(url, str):
        return None
    try:
        parsed = httpx.URL(url)
    except (httpx.InvalidURL, ValueError):
        return None
    return url if parsed.scheme == "https" and parsed.host in _RESPONSE_URL_HOSTS else None


def _enrolled_name(settings: Settings, slack_user: str) -> str | None:
    """The approver whose ``slack_user`` this is, as the run maps it (remediation.ballot)."""
    return next((name for name, factor in settings.approver_factors.items()
                 if factor.slack_user == slack_user and name in settings.approvers), None)


# -- the store -------------------------------------------------------------------------------------------------


def _waiting(store: Store, flow_run_id: str, step: str) -> PendingStep | None:
    if len(flow_run_id) > _RUN_ID_MAX:
        return None
    return next((s for s in store.pending_steps(flow_run_id) if s.step == step), None)


def _refuse_if_waiting(store: Store, click: slack_proof.SlackClick, approver: str, why: str, at: datetime) -> None:
    """Record a refused Slack answer on the incident whose step the click names, if that step waits; the run
    records the answers it judges the same way, so the incident shows every attempt."""
    step = _waiting(store, click.flow_run_id, click.step)
    if step is None:
        return
    reason = why[: approvers.REASON_MAX]
    store.record_approval(step.incident_id, Approval(answer=ApprovalAnswer.REFUSED, approver=approver,
                                                     reason=f"{reason}; {_REFUSED_BY_SERVE}", at=at, via="slack"),
                          action_id=step.action_id)
    store.add_timeline(step.incident_id, TimelineEntry(at=at, phase=Phase(step.phase),
                                                       event=f"approval refused: {reason}",
                                                       detail=_REFUSED_BY_SERVE))


# -- answering the clicker -------------------------------------------------------------------------------------


def _verdict_text(delivery: asyncio.Future[Approval | None]) -> str:
    """What the run decided, for the clicker; raises what the delivery raised unless it is CannotAnswer."""
    try:
        found = delivery.result()
    except approval_client.CannotAnswer as exc:
        return f"Not delivered: {exc}"
    if found is None:
        return "Delivered, but the run has not judged it yet: it may be busy or stopped (`remediate approvals` " \
               "shows what still waits)."
    line = approval_client.describe(found)[1]
    return line[:1].upper() + line[1:]


def _tell(relay: AnswerRelay, response_url: str | None, text: str, *, status: str) -> JSONResponse:
    follow_up = BackgroundTask(_tell_quietly, relay, response_url, text) if response_url else None
    return JSONResponse({"response_type": "ephemeral", "text": text, "status": status}, background=follow_up)


async def _tell_quietly(relay: AnswerRelay, response_url: str | None, text: str) -> None:
    if response_url is None:
        return
    try:
        await relay.tell_clicker(response_url, text)
    except Exception as exc:  # the answer itself is unaffected; the clicker just does not hear back
        log.warning("could not post to the click's Slack response_url: %s", type(exc).__name__)


async def _tell_verdict_when_judged(relay: AnswerRelay, response_url: str | None,
                                    delivery: asyncio.Future[Approval | None]) -> None:
    try:
        await asyncio.wait({delivery})
        text = _verdict_text(delivery)
    except Exception:
        log.exception("POST /slack/interactions: delivering a Slack answer failed")
        text = "The answer may not have reached the run (the failure is logged): check `remediate approvals`."
    await _tell_quietly(relay, response_url, text)

