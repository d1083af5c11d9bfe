"""A click on a Slack approval button, proven by Slack's request signature.

Slack signs every interaction request (docs: "Verifying requests from Slack"): header ``X-Slack-Request-Timestamp``
and ``X-Slack-Signature: v0=<hex HMAC-SHA256 of "v0:<timestamp>:<raw body>" with the app's signing secret>``; a
request older than five minutes is refused, so a captured one cannot be replayed later. The body is
``payload=<url-encoded JSON>`` with ``user.id`` and ``actions[0]`` (our button: ``action_id`` and ``value``).

``serve`` checks the signature when the click arrives (``POST /slack/interactions``) and forwards the signed request
unchanged; the run checks it again with its own copy of the secret before it counts the answer, so an answer
that merely claims to come from Slack (written straight to the Prefect API) proves nothing.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs

from pydantic import SecretStr

MAX_AGE_S = 300
APPROVE_ACTION = "remediate_approve"
DENY_ACTION = "remediate_deny"


class SlackProofError(ValueError):
    """Why a Slack request proves nothing: a bad signature, a stale timestamp, a payload that is not our button."""


@dataclass(frozen=True)
class SignedRequest:
    """Exactly what Slack sent: enough for anyone holding the signing secret to check it again."""

    timestamp: str
    signature: str
    body: str

    def dumps(self) -> str:
        return json.dumps({"ts": self.timestamp, "sig": self.signature, "body": self.body}, separators=(",", ":"))

    @classmethod
    def loads(cls, text: str) -> SignedRequest:
        try:
            data = json.loads(text)
            return cls(timestamp=str(data["ts"]), signature=str(data["sig"]), body=str(data["body"]))
        except (ValueError, TypeError, KeyError) as exc:
            raise SlackProofError("the Slack proof is not a signed request") from exc


@dataclass(frozen=True)
class SlackClick:
    user_id: str
    user_name: str
    approve: bool
    flow_run_id: str
    step: str
    proof_id: str  # unique per click: Slack's action_ts (with the trigger id), spent once


def sign(secret: str, timestamp: str, body: str) -> str:
    mac = hmac.new(secret.encode(), f"v0:{timestamp}:{body}".encode(), hashlib.sha256).hexdigest()
    return f"v0={mac}"


def button_value(flow_run_id: str, step: str) -> str:
    """What our Approve/Deny buttons carry: the run to answer and the step the click is for."""
    return json.dumps({"run": flow_run_id, "step": step}, separators=(",", ":"))


def verify(request: SignedRequest, secret: SecretStr | None, now: float) -> SlackClick:
    """The click, if Slack signed this request within the last five minutes; else SlackProofError saying why."""
    if secret is None:
        raise SlackProofError("no Slack signing secret is configured (REMEDIATE_SLACK_SIGNING_SECRET)")
    try:
        sent = float(request.timestamp)
    except ValueError:
        raise SlackProofError("the Slack timestamp is not a number") from None
    if sent != sent or abs(now - sent) > MAX_AGE_S:
        raise SlackProofError(f"the Slack request is stale: signed {now - sent:.0f}s ago (limit {MAX_AGE_S}s)")
    expected = sign(secret.get_secret_value(), request.timestamp, request.body)
    if not hmac.compare_digest(expected.encode(), request.signature.strip().encode("utf-8", "replace")):
        raise SlackProofError("the Slack signature does not match the request")
    return parse_click(request.body)


def parse_click(body: str) -> SlackClick:
    try:
        payload: Any = json.loads(parse_qs(body, strict_parsing=True)["payload"][0])
        user = payload["user"]
        action = payload["actions"][0]
        target = json.loads(action["value"])
        action_id = action["action_id"]
        click = SlackClick(user_id=str(user["id"]), user_name=str(user.get("username") or user.get("name") or ""),
                           approve=action_id == APPROVE_ACTION, flow_run_id=str(target["run"]),
                           step=str(target["step"]),
                           proof_id=f"slack:{action.get('action_ts', '')}:{payload.get('trigger_id', '')}")
    except (ValueError, TypeError, KeyError, IndexError) as exc:
        raise SlackProofError("the Slack request is not a click on a remediate approval button") from exc
    if action_id not in (APPROVE_ACTION, DENY_ACTION):
        raise SlackProofError(f"unknown Slack action '{action_id}'")
    return click
