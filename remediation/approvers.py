"""Who may approve, what proves it is them, and how many must agree: the rules, free of any adapter.

An approver is a name on ``approvers``. In ``remediate.toml`` an approver may be *enrolled*::

    [approvers.alice]
    totp = { env = "REMEDIATE_TOTP_ALICE" }      # or { prefect_secret = "totp-alice" }
    slack_user = "U024BE7LH"                     # her Slack user id, for the Approve/Deny buttons

An enrolled approver proves each answer with a fresh RFC 6238 code (30 s steps, six digits, ±1 step of clock
drift), or by clicking in Slack (a request Slack signs, remediation.slack_proof). A code counts once per approver
and time step (the store keeps the used ones), so a replayed answer is refused. A name without a factor is
believed only on the simulator platform: anywhere else nothing proves who typed it, so it is refused.

How many distinct people must approve one step: ``min_approvers`` maps ``"<severity>:<risk>"`` (``*`` for
any) to a count. The default asks two people for a destructive step of a SEV-1 incident and one otherwise.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import datetime

import pyotp
from pydantic import BaseModel, ConfigDict

from remediation.config_file import SecretRef, resolve

#: Lengths an answer may have: below the store's columns (255), so no answer can fail the run when recorded.
NAME_MAX = 64
REASON_MAX = 500
CODE_PATTERN = r"^(\d{6})?$"
STEP_MAX = 200
ANSWER_ID_MAX = 64
SLACK_PROOF_MAX = 16_000

TOTP_INTERVAL_S = 30
TOTP_ISSUER = "remediate"
DEFAULT_MIN_APPROVERS = {"sev1:destructive": 2}

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$")


class ApproverFactor(BaseModel):
    """What an enrolled approver proves themselves with; secrets are references, resolved when an answer comes."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    totp_env: str | None = None
    totp_prefect_secret: str | None = None
    slack_user: str | None = None

    def totp_ref(self, name: str) -> SecretRef | None:
        if not (self.totp_env or self.totp_prefect_secret):
            return None
        return SecretRef(setting=f"approvers.{name}.totp", env=self.totp_env, prefect_secret=self.totp_prefect_secret)

    @property
    def proven(self) -> bool:
        return bool(self.totp_env or self.totp_prefect_secret or self.slack_user)


def valid_name(name: str) -> bool:
    """Names are short identifiers: letters, digits, ``.``, ``_``, ``@``, ``-``, at most :data:`NAME_MAX`."""
    return bool(_NAME.fullmatch(name))  # not match: its ``$`` also matches before a trailing newline


def shown(text: str, limit: int | None = None) -> str:
    """Sender-written text as the timeline may show it: at most ``limit`` characters, control characters as ``?``
    (a name can never forge a line)."""
    return "".join(ch if ch.isprintable() else "?" for ch in text.strip()[:limit])


def needed(min_approvers: Mapping[str, int], severity: str, risk: str) -> int:
    """Distinct approvers a step needs: the operator's most specific rule (``severity:risk``, ``severity:*``,
    ``*:risk``, ``*:*``), else the built-in default's. An operator's ``*:destructive = 3`` is never undercut by the
    more specific built-in ``sev1:destructive = 2``."""
    keys = (f"{severity}:{risk}", f"{severity}:*", f"*:{risk}", "*:*")
    for rules in (min_approvers, DEFAULT_MIN_APPROVERS):
        for key in keys:
            if key in rules:
                return max(1, int(rules[key]))
    return 1


def totp_secret(name: str, factor: ApproverFactor) -> tuple[str | None, str]:
    """(secret, "") or (None, why not); the why names the reference, never a value."""
    ref = factor.totp_ref(name)
    if ref is None:
        return None, f"'{name}' has no TOTP factor enrolled"
    return resolve(ref)


def matching_counter(secret: str, code: str, at: datetime) -> int | None:
    """The TOTP time step whose code ``code`` is (now, one before or one after), or None."""
    totp = pyotp.TOTP(secret, interval=TOTP_INTERVAL_S)
    now = totp.timecode(at)
    for counter in (now, now - 1, now + 1):
        if pyotp.utils.strings_equal(totp.generate_otp(counter), code):
            return counter
    return None


def new_secret() -> str:
    return pyotp.random_base32()


def provisioning_uri(name: str, secret: str, service: str = "kamkmserve") -> str:
    return pyotp.TOTP(secret, interval=TOTP_INTERVAL_S).provisioning_uri(
        name=f"{name}@{service}", issuer_name=TOTP_ISSUER)


def code_at(secret: str, at: datetime) -> str:
    """The code an authenticator shows at ``at`` (for enrolment checks and tests)."""
    return pyotp.TOTP(secret, interval=TOTP_INTERVAL_S).at(at)


def step_binding(incident_id: str, action_id: str, digest: str) -> str:
    """What an answer names so it counts for exactly one pending step: incident, action and the plan's digest."""
    return f"{incident_id}/{action_id}/{digest[:16]}"
