"""One careful bearer-token REST client for the SaaS levers (Vercel, Sentry, Clerk).

What every adapter needs and must not get wrong on its own:

- **Secrets stay secret.** The token travels only in the ``Authorization`` header. Every message this module
  builds (and so every :class:`PlatformError` an adapter raises from it) is passed through :meth:`redact`, which
  replaces the token and any other registered secret with ``[redacted]``, even when a vendor echoes it back.
- **Bounded time.** Each request has a timeout; a ``429`` is waited out per ``Retry-After`` only while the total
  wait stays within ``max_wait_s`` (the clock's ``sleep``, so tests wait virtually); past the bound the call
  fails with :class:`RateLimited` ("unavailable"), never an open-ended stall inside an incident.
- **Clear errors.** Refusals become ``PlatformError("<vendor> <METHOD> <path>: HTTP <code>: <vendor message>")``,
  with the vendor's own error text pulled from its documented error shape.
- **Lazy.** Nothing connects when the adapter is built; a missing token is reported on first use. A client is
  opened per call (flows run on several event loops and a pooled client is bound to one; see ``tls``).
"""

from __future__ import annotations

import email.utils
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

import httpx
from pydantic import SecretStr

from remediation.providers.capabilities import Clock
from remediation.providers.clock import RealClock
from remediation.providers.platform import PlatformError
from remediation.providers.tls import shared_ssl_context

REDACTED = "[redacted]"
Params = Mapping[str, str | int | Iterable[str]] | None


class RateLimited(PlatformError):
    """The vendor kept answering 429 beyond our wait bound: the source is unavailable for now."""


class NotConfigured(PlatformError):
    """A credential or identifier the call needs is not configured."""


def secret_value(secret: SecretStr | str | None) -> str | None:
    if secret is None:
        return None
    value = secret.get_secret_value() if isinstance(secret, SecretStr) else secret
    return value or None


class RestClient:
    """Requests against one vendor API with one bearer token."""

    def __init__(self, vendor: str, base_url: str, token: SecretStr | str | None, *, timeout_s: float = 5.0,
                 transport: httpx.AsyncBaseTransport | None = None, clock: Clock | None = None,
                 max_wait_s: float = 10.0, max_attempts: int = 4, token_setting: str = "",
                 secrets: Iterable[SecretStr | str | None] = ()) -> None:
        self.vendor = vendor
        self.base_url = base_url.rstrip("/")
        self.timeout_s = timeout_s
        self.clock: Clock = clock or RealClock()
        self.max_wait_s = max_wait_s
        self.max_attempts = max_attempts
        self._token = secret_value(token)
        self._token_setting = token_setting
        self._transport = transport
        self._secrets = [s for s in (self._token, *(secret_value(x) for x in secrets)) if s]

    @property
    def configured(self) -> bool:
        return self._token is not None

    def redact(self, text: str) -> str:
        # Longest first, so a secret that contains another is replaced whole.
        for secret in sorted(self._secrets, key=len, reverse=True):
            text = text.replace(secret, REDACTED)
        return text

    def error(self, message: str, kind: type[PlatformError] = PlatformError, *, status: int | None = None
              ) -> PlatformError:
        return kind(self.redact(message), status=status)

    async def request(self, method: str, path: str, *, params: Params = None, json_body: Any = None,
                      accept: Iterable[int] = ()) -> httpx.Response:
        """Send one request (retrying 429s within the bound). Statuses >= 400 raise unless listed in ``accept``."""
        if self._token is None:
            raise self.error(f"{self.vendor}: no API token configured"
                             + (f" (set {self._token_setting})" if self._token_setting else ""), NotConfigured)
        url = path if path.startswith("http") else f"{self.base_url}{path}"
        where = f"{self.vendor} {method} {_path_of(url)}"
        waited = 0.0
        for attempt in range(1, self.max_attempts + 1):
            response = await self._send(method, url, params, json_body, where)
            if response.status_code != 429:
                break
            delay = retry_after_s(response.headers, self.clock.now())
            if attempt == self.max_attempts or delay is None or waited + delay > self.max_wait_s:
                shown = "no Retry-After" if delay is None else f"Retry-After {delay:g}s"
                raise self.error(f"{where}: rate limited (HTTP 429, {shown}; waited {waited:g}s of our "
                                 f"{self.max_wait_s:g}s bound): unavailable for now", RateLimited)
            waited += delay
            await self.clock.sleep(delay)
        if response.status_code >= 400 and response.status_code not in set(accept):
            raise self.error(f"{where}: HTTP {response.status_code}: {vendor_message(response)}",
                             status=response.status_code)
        return response

    async def json(self, method: str, path: str, **kwargs: Any) -> Any:
        response = await self.request(method, path, **kwargs)
        if response.status_code == 204 or not response.content:
            return None
        try:
            return response.json()
        except ValueError as exc:
            raise self.error(f"{self.vendor} {method} {_path_of(path)}: not JSON: {response.text[:200]!r}") from exc

    async def _send(self, method: str, url: str, params: Params, json_body: Any, where: str) -> httpx.Response:
        headers = {"Authorization": f"Bearer {self._token}", "Accept": "application/json"}
        try:
            async with httpx.AsyncClient(timeout=self.timeout_s, transport=self._transport,
                                         verify=shared_ssl_context()) as client:
                return await client.request(method, url, params=_query(params), json=json_body, headers=headers)
        except httpx.TimeoutException as exc:
            raise self.error(f"{where}: timed out after {self.timeout_s:g}s") from exc
        except httpx.HTTPError as exc:
            raise self.error(f"{where}: unreachable: {type(exc).__name__}: {exc}") from exc


def _query(params: Params) -> httpx.QueryParams | None:
    if params is None:
        return None
    pairs: list[tuple[str, str | int | float | bool | None]] = []
    for key, value in params.items():
        if isinstance(value, str | int):
            pairs.append((key, str(value)))
        else:
            pairs.extend((key, str(item)) for item in value)
    return httpx.QueryParams(pairs)


def _path_of(url: str) -> str:
    # Messages name the path, not the query: queries can carry identifiers we do not need to repeat everywhere.
    return httpx.URL(url).path if url.startswith("http") else url.split("?", 1)[0]


def retry_after_s(headers: Mapping[str, str], now: datetime) -> float | None:
    """Seconds to wait from ``Retry-After`` (seconds or an HTTP date), else Vercel's ``X-RateLimit-Reset`` (epoch s)."""
    lowered = {k.lower(): v for k, v in headers.items()}
    raw = lowered.get("retry-after")
    if raw is not None:
        raw = raw.strip()
        try:
            return max(float(raw), 0.0)
        except ValueError:
            try:
                moment = email.utils.parsedate_to_datetime(raw)
            except (TypeError, ValueError):
                return None
            if moment.tzinfo is None:
                moment = moment.replace(tzinfo=UTC)
            return max((moment - now).total_seconds(), 0.0)
    reset = lowered.get("x-ratelimit-reset")
    if reset is not None:
        try:
            return max(float(reset) - now.timestamp(), 0.0)
        except ValueError:
            return None
    return None


def vendor_message(response: httpx.Response) -> str:
    """The vendor's own error text from its documented error body, else the start of the body."""
    try:
        body = response.json()
    except ValueError:
        return response.text[:200] or response.reason_phrase
    if isinstance(body, dict):
        error = body.get("error")
        if isinstance(error, dict):  # Vercel: {"error": {"code", "message"}}
            return f"{error.get('code', '')}: {error.get('message', '')}".strip(": ")
        errors = body.get("errors")
        if isinstance(errors, list) and errors and isinstance(errors[0], dict):  # Clerk: {"errors": [{...}]}
            first = errors[0]
            return str(first.get("long_message") or first.get("message") or first.get("code") or errors)[:200]
        if "detail" in body:  # Sentry (Django REST framework): {"detail": "..."}
            return str(body["detail"])[:200]
        if isinstance(error, str):
            return error[:200]
    return str(body)[:200]


def epoch_ms(value: object) -> datetime | None:
    """Vercel and Clerk timestamps are epoch milliseconds."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return datetime.fromtimestamp(value / 1000.0, tz=UTC)


def iso_time(value: object) -> datetime | None:
    """Sentry timestamps are ISO 8601 strings (``2026-01-01T10:00:00Z``, sometimes with microseconds)."""
    if not isinstance(value, str) or not value:
        return None
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)
