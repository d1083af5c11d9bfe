"""One bounded HTTP call for the notification channels: a timeout per attempt, a few retries on 429 / 5xx /
network errors (the vendors ask for that), and messages that name the vendor and the path, never the secret.

A client is opened per call: a run publishes from its own event loop and, for synchronous callers, from a helper
thread's loop; a pooled client is bound to one loop.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import httpx

from remediation.notify.redact import redact
from remediation.providers.capabilities import Clock
from remediation.providers.clock import RealClock
from remediation.providers.tls import shared_ssl_context

RETRY_STATUSES = frozenset({420, 429, 500, 502, 503, 504})  # Statuspage answers 420 when rate limited


class NotifyError(RuntimeError):
    """A channel could not deliver; the message is safe to record (no credential in it)."""


class NotConfigured(NotifyError):
    """The channel lacks a credential or identifier it needs."""


async def call(vendor: str, method: str, url: str, *, where: str, json_body: Any = None,
               headers: Mapping[str, str] | None = None, timeout_s: float = 5.0, attempts: int = 3,
               backoff_s: float = 0.5, clock: Clock | None = None,
               transport: httpx.AsyncBaseTransport | None = None) -> httpx.Response:
    """Send, retrying transient failures; returns the last response (any status) or raises :class:`NotifyError`.

    ``where`` is what messages say instead of the URL (the URL may be the credential itself)."""
    clock = clock or RealClock()
    last: str = ""
    for attempt in range(1, attempts + 1):
        try:
            async with httpx.AsyncClient(timeout=timeout_s, transport=transport,
                                         verify=shared_ssl_context()) as client:
                response = await client.request(method, url, json=json_body, headers=dict(headers or {}))
        except httpx.TimeoutException:
            last = f"{vendor} {method} {where}: timed out after {timeout_s:g}s"
        except httpx.HTTPError as exc:
            last = f"{vendor} {method} {where}: unreachable: {type(exc).__name__}"
        else:
            if response.status_code not in RETRY_STATUSES or attempt == attempts:
                return response
            last = f"{vendor} {method} {where}: HTTP {response.status_code}"
        if attempt < attempts:
            await clock.sleep(backoff_s * 2 ** (attempt - 1))
    raise NotifyError(redact(last))


def refusal(vendor: str, method: str, where: str, response: httpx.Response) -> NotifyError:
    """A vendor's non-success answer as a safe message (its own error text, briefly)."""
    text = response.text.strip()[:200]
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, dict):
        text = str(body.get("error") or body.get("message") or body.get("errors") or body)[:200]
    said = text or response.reason_phrase
    return NotifyError(redact(f"{vendor} {method} {where}: HTTP {response.status_code}: {said}"))
