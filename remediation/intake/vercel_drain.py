"""``POST /logs/vercel``: a Vercel Log Drain delivering the app's runtime logs, kept for the runbooks' log reader.

Vercel POSTs batches as a JSON array or as NDJSON (one object per line), each entry with at least ``timestamp``
(epoch ms) and usually ``message`` (for a function, the line the app printed), ``source``, ``level``, ``type``
and ``id``. It signs the raw body: ``x-vercel-signature`` is the hex HMAC-SHA1 with the drain's secret.

Answers follow the receiver's contract (remediation.intake.app): 503 when no secret is configured (every
delivery is refused, never accepted unsigned), 413 over the body limit, 401 on a missing or wrong signature, 400
when the body is not JSON/NDJSON, 422 when it is not a batch of entry objects or no entry carries a usable
timestamp; nothing is stored on any of them. Entries without a message (request records) are counted and
skipped, as are entries older than the retention (they would be pruned at once). Old rows are pruned at most
once a minute per process, after an insert, so a delivery pays for it rarely and never for long.
"""

from __future__ import annotations

import hashlib
import math
import threading
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.datastructures import Headers
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from remediation.intake.auth import signature_matches
from remediation.intake.logsafe import intake_logger
from remediation.intake.wire import IntakeError, parse_json, read_body
from remediation.providers.capabilities import Clock
from remediation.providers.drain_logs import VERCEL_DRAIN
from remediation.settings import Settings
from remediation.store import Store
from remediation.store.logs import LogEntryIn

log = intake_logger()

SIGNATURE_HEADER = "x-vercel-signature"
_CHALLENGE = 'HMAC-SHA1 header="x-vercel-signature"'
_STREAMS = ("stdout", "stderr")
_PRUNE_EVERY_S = 60.0


def check_drain_signature(raw: bytes, headers: Headers, settings: Settings) -> None:
    if settings.vercel.drain_secret is None:
        raise IntakeError(503, "log drain not configured",
                          "no drain secret: set REMEDIATE_VERCEL_DRAIN_SECRET to the Vercel drain's signature secret")
    given = headers.get(SIGNATURE_HEADER)
    if not given:
        raise IntakeError(401, "unauthorized", f"missing {SIGNATURE_HEADER} header",
                          headers={"WWW-Authenticate": _CHALLENGE})
    if not signature_matches(settings.vercel.drain_secret, raw, given, hashlib.sha1):
        raise IntakeError(401, "unauthorized", f"{SIGNATURE_HEADER} does not match the body",
                          headers={"WWW-Authenticate": _CHALLENGE})


def parse_batch(raw: bytes) -> list[dict[str, Any]]:
    """The entries of a JSON-array or NDJSON body; 400 when it is not JSON, 422 when an item is not an object."""
    if raw.lstrip().startswith(b"["):
        items = parse_json(raw)
    else:
        items = []
        for number, line in enumerate(raw.splitlines(), start=1):
            if not line.strip():
                continue
            try:
                items.append(parse_json(line))
            except IntakeError as exc:
                raise IntakeError(exc.status, exc.error, f"NDJSON line {number}: {exc.detail}") from None
        if not items:
            raise IntakeError(400, "malformed JSON", "body is empty; expected a JSON array or NDJSON of log entries")
    if not isinstance(items, list):
        raise IntakeError(422, "invalid payload", "expected a JSON array or NDJSON of log entries")
    for index, item in enumerate(items):
        if not isinstance(item, dict):
            raise IntakeError(422, "invalid payload", f"entry {index} is a {type(item).__name__}, not an object")
    return items


def logged_at(entry: dict[str, Any]) -> datetime | None:
    """The entry's ``timestamp`` (epoch ms) as an aware datetime, or None when it is missing or absurd."""
    value = entry.get("timestamp")
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value) or value <= 0:
        return None
    try:
        return datetime.fromtimestamp(value / 1000.0, UTC)
    except (OverflowError, OSError, ValueError):
        return None


def select_entries(items: list[dict[str, Any]], keep_after: datetime) -> tuple[list[LogEntryIn], dict[str, int]]:
    """The entries to store and, by reason, the ones skipped. 422 when no entry has a usable timestamp."""
    kept: list[LogEntryIn] = []
    skipped = {"invalid": 0, "no_message": 0, "expired": 0}
    for entry in items:
        at = logged_at(entry)
        message = entry.get("message")
        if at is None or (message is not None and not isinstance(message, str)):
            skipped["invalid"] += 1
        elif not message:
            skipped["no_message"] += 1
        elif at < keep_after:
            skipped["expired"] += 1
        else:
            stream = entry.get("type")
            kept.append(LogEntryIn(logged_at=at, message=message, stream=stream if stream in _STREAMS else None,
                                   raw=entry))
    if items and skipped["invalid"] == len(items):
        raise IntakeError(422, "invalid payload", "no entry has a numeric timestamp (epoch ms) and a string message")
    return kept, skipped


class _Pruner:
    """Runs the retention delete at most every ``_PRUNE_EVERY_S`` seconds per process."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._last: float | None = None

    def due(self) -> bool:
        with self._lock:
            now = time.monotonic()
            if self._last is not None and now - self._last < _PRUNE_EVERY_S:
                return False
            self._last = now
            return True


def drain_endpoint(settings: Settings, store: Store, clock: Clock) -> Callable[[Request], Awaitable[Response]]:
    """The endpoint (wrap it in the receiver's ``guarded``)."""
    limit = settings.intake_max_body_bytes
    retention = timedelta(seconds=settings.log_drain_retention_s)
    pruner = _Pruner()
    if settings.vercel.drain_secret is None:
        log.warning("no Vercel drain secret configured: log drain deliveries will be refused")

    async def endpoint(request: Request) -> Response:
        if settings.vercel.drain_secret is None:  # refuse before reading a body nobody may send
            check_drain_signature(b"", request.headers, settings)
        raw = await read_body(request, limit)
        check_drain_signature(raw, request.headers, settings)
        now = clock.now()
        entries, skipped = select_entries(parse_batch(raw), now - retention)
        stored = await run_in_threadpool(store.add_log_lines, VERCEL_DRAIN, entries, now)
        pruned = 0
        if pruner.due():
            pruned = await run_in_threadpool(store.prune_log_lines, now - retention)
        return JSONResponse({"source": "vercel", "stored": stored, "skipped": skipped, "pruned": pruned})

    return endpoint
