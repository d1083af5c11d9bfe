"""Slack incoming webhook: the incident's timeline as it happens, and approval requests that link to the run.

Shape (docs/reference/integrations.md §5): ``POST <webhook URL>`` with ``{"text": <fallback>, "blocks": [...]}``;
success is ``200`` with body ``ok``; failures are non-200 with a plain-text code (``invalid_payload``,
``no_text``, ``channel_not_found``, ``channel_is_archived``, ``action_prohibited``). The URL fixes the channel
and is itself the credential: it is never logged, never put in a message (see remediation.notify.redact).

Approving *in* Slack needs a Slack app with interactivity whose request URL is serve's ``POST /slack/interactions``
(remediation.intake.slack_interactions); an incoming webhook alone cannot receive clicks. So the approval message
always carries a link button to the Prefect UI's flow-run page (where the Resume form is) and the equivalent
``remediate approve`` command; when the Slack signing secret is configured (``approve_buttons``: the app has
interactivity, and the run can check what Slack signs) it also carries Approve and Deny buttons. A button only
names the run and the step (remediation.slack_proof.button_value): who clicked is proven by Slack's signature on the
click, never by anything in the message.

The probe for ``remediate check`` posts an empty object: Slack refuses it with ``400 no_text`` before posting
anything when the webhook is valid, and with ``403``/``404`` (``invalid_token``, ``no_service``) when it is
not. Nothing reaches the channel either way.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import httpx
from pydantic import SecretStr

from remediation import slack_proof
from remediation.models import ActionState, ApprovalAnswer, Outcome
from remediation.notify.http import NotConfigured, NotifyError, call, refusal
from remediation.notify.ladder import pages_on_call
from remediation.notify.notifier import EventKind, IncidentEvent
from remediation.notify.probe import ProbeResult
from remediation.providers.capabilities import Clock

_STATE_ICON = {ActionState.APPLIED: ":white_check_mark:", ActionState.FAILED: ":x:",
               ActionState.PLANNED: ":no_entry_sign:", ActionState.UNDONE: ":leftwards_arrow_with_hook:",
               ActionState.UNKNOWN: ":warning:"}
_OUTCOME_ICON = {Outcome.RECOVERED: ":large_green_circle:", Outcome.ESCALATED: ":rotating_light:",
                 Outcome.DENIED: ":no_entry:", Outcome.STOOD_DOWN: ":white_circle:", Outcome.DRY_RUN: ":ghost:"}
#: Slack answers a valid webhook's empty post with one of these before posting anything.
_VALID_BUT_EMPTY = ("no_text", "invalid_payload", "missing_text_or_fallback_or_attachments")
#: Block Kit limits (docs: "Reference: block elements"): a button's value, a confirm dialog's text.
BUTTON_VALUE_MAX = 2000
_CONFIRM_TEXT_MAX = 300
#: The link button's action id: Slack posts its clicks to the interactivity URL too, where they are acknowledged.
OPEN_RUN_ACTION = "open-run"


def escape(text: str) -> str:
    """Slack mrkdwn: &, < and > are control characters (links, mentions); everything else is literal."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


class SlackWebhook:
    name = "slack"

    def __init__(self, webhook_url: SecretStr | str | None, *, timeout_s: float = 5.0, clock: Clock | None = None,
                 transport: httpx.AsyncBaseTransport | None = None, approve_buttons: bool = False) -> None:
        raw = webhook_url.get_secret_value() if isinstance(webhook_url, SecretStr) else webhook_url
        self._url = raw or None
        self.approve_buttons = approve_buttons
        self.timeout_s = timeout_s
        self.clock = clock
        self._transport = transport

    def secrets(self) -> Iterable[str]:
        if not self._url:
            return []
        url = httpx.URL(self._url)
        # The whole URL, its normalised form (what httpx logs) and the path: the token is in the path.
        return [self._url, str(url), url.path] if len(url.path) > 1 else [self._url, str(url)]

    async def send(self, event: IncidentEvent) -> None:
        message = render(event, approve_buttons=self.approve_buttons)
        if message is not None:
            await self.post(message)

    async def post(self, message: dict[str, Any]) -> None:
        if not self._url:
            raise NotConfigured("slack: no webhook URL configured (REMEDIATE_SLACK_WEBHOOK_URL)")
        response = await call("slack", "POST", self._url, where="webhook", json_body=message,
                              timeout_s=self.timeout_s, clock=self.clock, transport=self._transport)
        if response.status_code != 200:
            raise refusal("slack", "POST", "webhook", response)

    async def probe(self) -> ProbeResult:
        if not self._url:
            return ProbeResult.absent("REMEDIATE_SLACK_WEBHOOK_URL (a secret: env or a Prefect Secret block)")
        try:
            response = await call("slack", "POST", self._url, where="webhook", json_body={},
                                  timeout_s=self.timeout_s, attempts=1, transport=self._transport)
        except NotifyError as exc:
            return ProbeResult.unreachable(str(exc))
        code = response.text.strip()
        if response.status_code == 400 and code in _VALID_BUT_EMPTY:
            return ProbeResult.fine(f"webhook accepted the request and refused the empty probe ({code}); "
                                    "nothing was posted")
        if response.status_code == 200:
            return ProbeResult.fine("webhook answered ok")
        return ProbeResult.refused(f"webhook answered HTTP {response.status_code}: {code[:100]}")


def render(event: IncidentEvent, *, approve_buttons: bool = False) -> dict[str, Any] | None:
    """The Slack message for an event, or None when the event is not worth a message.

    ``approve_buttons``: put Approve/Deny buttons on approval requests (only when the Slack app's clicks can reach
    serve and be checked: the signing secret is configured)."""
    head = f"*{escape(event.runbook)}* on `{escape(event.service)}` · {event.severity_label} · `{event.incident_id}`"
    link = f"<{event.run_url}|open the run in Prefect>" if event.run_url else "run link unavailable"
    if event.kind is EventKind.APPROVAL_REQUESTED:
        return _approval(event, head, approve_buttons)
    if event.kind is EventKind.ACTION:
        state = event.state or ActionState.PLANNED
        icon = _STATE_ICON.get(state, ":grey_question:")
        said = "not applied" if state is ActionState.PLANNED else state.value
        line = f"{icon} [{event.phase.value}] {said}: *{escape(event.summary)}*"
        if event.risk:
            line += f" ({event.risk})"
        text = f"{line}\n{escape(event.detail)}" if event.detail else line
    elif event.kind is EventKind.APPROVAL_ANSWERED:
        who = escape(event.approver or "nobody")
        answer = (event.answer or ApprovalAnswer.TIMEOUT).value
        text = f":ballot_box_with_check: approval of *{escape(event.summary)}*: {answer} by {who}"
        if event.detail:
            text += f"\n{escape(event.detail)}"
    elif event.kind is EventKind.PAGE:
        if pages_on_call(event.severity):
            tier = event.tier.label if event.tier else "next tier"
            text = f":telephone_receiver: {escape(event.summary)}: paging the *{tier}*"
        else:  # SEV-3/4: the ladder's rung is a reminder here, nobody was paged (remediation.notify.ladder)
            text = f":hourglass_flowing_sand: {escape(event.summary)}: *still no answer*"
        if event.detail:
            text += f"\n{escape(event.detail)}"
    elif event.kind is EventKind.ESCALATED:
        text = f":rotating_light: *escalated* [{event.phase.value}]: {escape(event.summary)}"
    else:  # FINISHED
        if event.outcome is Outcome.STOOD_DOWN and not event.actions_applied:
            return None  # nothing happened that anyone needs to hear about
        outcome = event.outcome or Outcome.ESCALATED
        text = f"{_OUTCOME_ICON.get(outcome, '')} outcome *{outcome.value}*: {escape(event.summary)}".strip()
    blocks = [{"type": "section", "text": {"type": "mrkdwn", "text": text}},
              {"type": "context", "elements": [{"type": "mrkdwn", "text": f"{head} · {link}"}]}]
    return {"text": _plain(f"{event.runbook} {event.incident_id}: {text}"), "blocks": blocks}


def _approval(event: IncidentEvent, head: str, approve_buttons: bool) -> dict[str, Any]:
    ask = f":raised_hand: *Approval needed*: {escape(event.summary)}"
    if event.risk:
        ask += f" ({event.risk})"
    lines = [ask, escape(event.detail)] if event.detail else [ask]
    if event.needed > 1:
        lines.append(f"This step needs *{event.needed} approvals* from different people; a single deny stops it.")
    if event.timeout_s:
        then = ("the on-call ladder pages the next tier if nobody answers within the ack time" if
                pages_on_call(event.severity) else f"nobody is paged for a {event.severity_label} approval: this "
                "channel is reminded each ack time without an answer")
        lines.append(f"Unanswered after {event.timeout_s:g}s counts as *deny*; {then}.")
    if event.flow_run_id:
        lines.append(f"Or from a shell: `remediate approve {event.flow_run_id} --as <name> --code <code> [--deny] "
                     "--reason <text>`")
    blocks: list[dict[str, Any]] = [
        {"type": "section", "text": {"type": "mrkdwn", "text": "\n".join(lines)}},
        {"type": "context", "elements": [{"type": "mrkdwn", "text": head}]},
    ]
    buttons = _answer_buttons(event) if approve_buttons else []
    if event.run_url:
        # A link button: opens the flow-run page (its Resume form is the approval); no Slack app needed.
        label = "Open the run in Prefect" if buttons else "Approve or deny"
        link: dict[str, Any] = {"type": "button", "action_id": OPEN_RUN_ACTION, "url": event.run_url,
                                "text": {"type": "plain_text", "text": label}, "value": f"{event.incident_id}:open"}
        if not buttons:  # the only way to answer from this message: make it the prominent one
            link["style"] = "primary"
        buttons.append(link)
    if buttons:
        blocks.insert(1, {"type": "actions", "block_id": f"approval:{event.incident_id}", "elements": buttons})
    fallback = f"Approval needed for {event.summary} ({event.incident_id})"
    if event.needed > 1:
        fallback += f", {event.needed} approvals needed"
    if event.run_url:
        fallback += f": {event.run_url}"
    return {"text": fallback, "blocks": blocks}


def _answer_buttons(event: IncidentEvent) -> list[dict[str, Any]]:
    """Approve and Deny, each naming the run and the step it answers; none when the event cannot name them."""
    if not (event.flow_run_id and event.step):
        return []
    value = slack_proof.button_value(event.flow_run_id, event.step)
    if len(value) > BUTTON_VALUE_MAX:  # Slack would refuse the whole message; the link and the CLI still work
        return []
    confirm = {
        "title": {"type": "plain_text", "text": "Approve this step?"},
        # plain_text: the summary comes from the run's plan, and must not render as links or mentions.
        "text": {"type": "plain_text", "text": f"Carry out: {event.summary}"[:_CONFIRM_TEXT_MAX]},
        "confirm": {"type": "plain_text", "text": "Approve"},
        "deny": {"type": "plain_text", "text": "Cancel"},
        "style": "primary",
    }
    return [
        {"type": "button", "action_id": slack_proof.APPROVE_ACTION, "style": "primary", "value": value,
         "text": {"type": "plain_text", "text": "Approve"}, "confirm": confirm},
        {"type": "button", "action_id": slack_proof.DENY_ACTION, "style": "danger", "value": value,
         "text": {"type": "plain_text", "text": "Deny"}},
    ]


def _plain(text: str) -> str:
    return text.replace("*", "")[:3000]
