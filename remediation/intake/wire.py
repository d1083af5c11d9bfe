"""Reading a delivery off the wire: size limit, strict JSON, and the 4xx answers for bad input.

Everything here turns bad input into an :class:`IntakeError` with a 4xx status and a message a sender's
operator can act on. The JSON checks go beyond syntax on purpose: values PostgreSQL cannot store (NUL
characters, lone surrogates, NaN/Infinity, absurd nesting) would otherwise surface later as a database
error, be answered 503, and make Alertmanager retry a delivery that can never succeed.
"""

from __future__ import annotations

import json
import math
from typing import Any, NoReturn

from pydantic import ValidationError
from starlette.requests import Request
from starlette.responses import JSONResponse

MAX_DEPTH = 64
_MAX_ERRORS = 10


class IntakeError(Exception):
    """A request we answer with ``status`` and a JSON ``{"error", "detail"}`` body (plus ``extra``)."""

    def __init__(
        self,
        status: int,
        error: str,
        detail: str,
        *,
        headers: dict[str, str] | None = None,
        extra: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(f"{status} {error}: {detail}")
        self.status = status
        self.error = error
        self.detail = detail
        self.headers = headers or {}
        self.extra = extra or {}

    def response(self) -> JSONResponse:
        body = {"error": self.error, "detail": self.detail, **self.extra}
        return JSONResponse(body, status_code=self.status, headers=self.headers)


async def read_body(request: Request, limit: int) -> bytes:
    """The raw body, refusing more than ``limit`` bytes by header and while streaming (chunked bodies)."""
    declared = request.headers.get("content-length")
    if declared is not None:
        try:
            length = int(declared)
        except ValueError:
            raise IntakeError(400, "bad request", f"Content-Length {declared!r} is not a number") from None
        if length > limit:
            _too_large(limit)
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            _too_large(limit)
        chunks.append(chunk)
    return b"".join(chunks)


def _too_large(limit: int) -> NoReturn:
    raise IntakeError(413, "payload too large", f"body exceeds the intake limit of {limit} bytes")


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def parse_json(raw: bytes) -> Any:
    """Parse strictly (UTF-8, no NaN/Infinity) and check every value can be stored; 400 otherwise."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise IntakeError(400, "malformed JSON", f"body is not UTF-8: {exc.reason} at byte {exc.start}") from None
    if not text.strip():
        raise IntakeError(400, "malformed JSON", "body is empty; expected a JSON object")
    try:
        value = json.loads(text, parse_constant=_reject_constant)
    except json.JSONDecodeError as exc:
        raise IntakeError(
            400, "malformed JSON", f"{exc.msg} at line {exc.lineno} column {exc.colno} (char {exc.pos})"
        ) from None
    except RecursionError:
        raise IntakeError(400, "malformed JSON", "JSON is nested too deeply") from None
    except ValueError as exc:  # NaN/Infinity, integers beyond Python's digit limit
        raise IntakeError(400, "malformed JSON", str(exc)) from None
    problem = _unstorable(value, 0)
    if problem:
        raise IntakeError(400, "malformed JSON", problem)
    return value


def _unstorable(value: Any, depth: int) -> str | None:
    """Why ``value`` cannot be stored as JSON on every backend, or None (recursion bounded by MAX_DEPTH)."""
    if depth > MAX_DEPTH:
        return f"JSON is nested deeper than {MAX_DEPTH} levels"
    if isinstance(value, str):
        return _bad_string(value)
    if isinstance(value, float) and not math.isfinite(value):
        return "number out of range (overflows to infinity)"
    if isinstance(value, list):
        for item in value:
            if problem := _unstorable(item, depth + 1):
                return problem
    elif isinstance(value, dict):
        for key, item in value.items():
            if (problem := _bad_string(key)) or (problem := _unstorable(item, depth + 1)):
                return problem
    return None


def _bad_string(text: str) -> str | None:
    if "\x00" in text:
        return "strings must not contain NUL (\\u0000) characters"
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return "strings must not contain unpaired surrogates (\\ud800-\\udfff)"
    return None


def require_object(value: Any) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise IntakeError(422, "invalid payload", f"expected a JSON object, got {type(value).__name__}")
    return value


def invalid(exc: ValidationError, what: str) -> IntakeError:
    """422 with a readable summary of a pydantic error: ``alerts.0.labels: Input should be a valid dict``."""
    errors = exc.errors(include_url=False, include_context=False, include_input=False)
    lines = [f"{'.'.join(str(p) for p in e['loc']) or '(body)'}: {e['msg']}" for e in errors[:_MAX_ERRORS]]
    if len(errors) > _MAX_ERRORS:
        lines.append(f"... and {len(errors) - _MAX_ERRORS} more")
    return IntakeError(422, "invalid payload", f"not a valid {what}: " + "; ".join(lines), extra={"errors": lines})
