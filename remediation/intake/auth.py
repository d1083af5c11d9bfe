"""Who may deliver alerts: a shared token or Basic credentials (Alertmanager, generic), HMAC (Sentry).

Alertmanager webhooks carry no signature, so the bearer token / Basic password is the whole
authentication: compared in constant time, and a receiver with neither configured refuses everything
(503: a server-side misconfiguration that a redelivery may outlive) rather than accepting anonymous alerts.

Sentry signs the raw body but not the time, so a captured delivery could be replayed: stale
``Sentry-Hook-Timestamp`` values are refused and ``Request-ID`` values already seen are answered as
idempotent no-ops. Neither header is signed, though, so a replay with fresh ones passes both: the defence
that holds is in the body (``sentry.refuse_stale`` and the delivery key, see remediation/intake/sentry.py).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import threading
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

from pydantic import SecretStr
from starlette.datastructures import Headers

from remediation.intake.wire import IntakeError
from remediation.settings import Settings

REALM = "remediation-intake"


def _unauthorized(detail: str, challenge: str) -> IntakeError:
    return IntakeError(401, "unauthorized", detail, headers={"WWW-Authenticate": challenge})


def check_shared_secret(headers: Headers, settings: Settings) -> None:
    """Accept ``Authorization: Bearer <intake_token>`` or Basic ``intake_basic_user:password``."""
    token = settings.intake_token.get_secret_value() if settings.intake_token else None
    user = settings.intake_basic_user
    password = settings.intake_basic_password.get_secret_value() if settings.intake_basic_password else None
    basic = user is not None and password is not None
    if not token and not basic:
        raise IntakeError(
            503,
            "intake not configured",
            "no intake credentials: set REMEDIATE_INTAKE_TOKEN or REMEDIATE_INTAKE_BASIC_USER and "
            "REMEDIATE_INTAKE_BASIC_PASSWORD",
        )
    challenges = ([f'Bearer realm="{REALM}"'] if token else []) + ([f'Basic realm="{REALM}"'] if basic else [])
    challenge = ", ".join(challenges)
    header = headers.get("authorization")
    if not header:
        raise _unauthorized("missing Authorization header", challenge)
    scheme, _, credentials = header.strip().partition(" ")
    credentials = credentials.strip()
    if scheme.lower() == "bearer" and token:
        if hmac.compare_digest(credentials.encode(), token.encode()):
            return
        raise _unauthorized("bearer token does not match", challenge)
    if scheme.lower() == "basic" and basic:
        assert user is not None and password is not None
        given_user, given_password = _decode_basic(credentials, challenge)
        # Both comparisons always run, so timing does not tell which half was wrong.
        user_ok = hmac.compare_digest(given_user.encode(), user.encode())
        password_ok = hmac.compare_digest(given_password.encode(), password.encode())
        if user_ok and password_ok:
            return
        raise _unauthorized("basic credentials do not match", challenge)
    raise _unauthorized(f"unsupported authorization scheme {scheme!r}", challenge)


def _decode_basic(credentials: str, challenge: str) -> tuple[str, str]:
    try:
        decoded = base64.b64decode(credentials, validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise _unauthorized("malformed basic credentials", challenge) from None
    user, sep, password = decoded.partition(":")
    if not sep:
        raise _unauthorized("malformed basic credentials", challenge)
    return user, password


SENTRY_CHALLENGE = 'HMAC-SHA256 header="Sentry-Hook-Signature"'


def signature_matches(secret: SecretStr, raw: bytes, given: str, digest: Callable[[], Any]) -> bool:
    """Whether ``given`` is the hex HMAC of the raw body with ``secret`` (constant-time; case and spaces ignored)."""
    expected = hmac.new(secret.get_secret_value().encode("utf-8"), raw, digest).hexdigest()
    return hmac.compare_digest(expected.encode(), given.strip().lower().encode("utf-8", "replace"))


def check_sentry_signature(raw: bytes, headers: Headers, settings: Settings, now: float) -> None:
    """HMAC-SHA256 of the raw body with the client secret, then the timestamp's age."""
    if settings.sentry.client_secret is None:
        raise IntakeError(503, "intake not configured", "no Sentry client secret: set REMEDIATE_SENTRY_CLIENT_SECRET")
    given = headers.get("sentry-hook-signature")
    if not given:
        raise _unauthorized("missing Sentry-Hook-Signature header", SENTRY_CHALLENGE)
    if not signature_matches(settings.sentry.client_secret, raw, given, hashlib.sha256):
        raise _unauthorized("Sentry-Hook-Signature does not match the body", SENTRY_CHALLENGE)
    stamp = headers.get("sentry-hook-timestamp")
    try:
        sent = float(stamp) if stamp is not None else None
    except ValueError:
        sent = None
    if sent is None or sent != sent:  # missing, malformed or NaN
        raise _unauthorized("missing or malformed Sentry-Hook-Timestamp header", SENTRY_CHALLENGE)
    age = now - sent
    if abs(age) > settings.sentry.max_age_s:
        raise _unauthorized(
            f"Sentry-Hook-Timestamp is {age:.0f} s from now (limit {settings.sentry.max_age_s} s): stale or replayed",
            SENTRY_CHALLENGE,
        )


class SeenRequests:
    """A bounded, thread-safe set of delivery ids (LRU eviction).

    ``claim`` is check-and-insert in one step, so two concurrent deliveries of one id cannot both pass;
    ``release`` forgets an id whose processing failed, so a redelivery is not mistaken for a duplicate.
    """

    def __init__(self, capacity: int = 10_000) -> None:
        self._capacity = capacity
        self._ids: OrderedDict[str, None] = OrderedDict()
        self._lock = threading.Lock()

    def claim(self, request_id: str) -> bool:
        """True if ``request_id`` is new (now remembered); False if it was seen before."""
        with self._lock:
            if request_id in self._ids:
                self._ids.move_to_end(request_id)
                return False
            self._ids[request_id] = None
            if len(self._ids) > self._capacity:
                self._ids.popitem(last=False)
            return True

    def release(self, request_id: str) -> None:
        with self._lock:
            self._ids.pop(request_id, None)

    def __len__(self) -> int:
        return len(self._ids)
