"""Starlette's own refusals (no such path, wrong method) as JSON, like every other reply of the receiver.

Without these handlers a ``GET /alerts/generic`` gets Starlette's plain-text ``Method Not Allowed``: a sender (or a
person with curl) parsing our replies as JSON would get a parse error instead of the reason.
"""

from __future__ import annotations

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response

from remediation.intake.wire import IntakeError


async def http_error(request: Request, exc: Exception) -> Response:
    """405 with the methods the path takes (``allowed``, and the ``Allow`` header HTTP requires), 404, or any other
    status Starlette raised, each with a JSON ``{"error", "detail"}`` body."""
    if not isinstance(exc, HTTPException):  # registered for HTTPException only; anything else is not ours to word
        raise exc
    where = f"{request.method} {request.url.path}"
    if exc.status_code == 405:
        allow = (exc.headers or {}).get("Allow", "")
        allowed = [method.strip() for method in allow.split(",") if method.strip()]
        return IntakeError(405, "method not allowed", f"{where}: this endpoint takes {' or '.join(allowed)}",
                           headers={"Allow": allow}, extra={"allowed": allowed}).response()
    if exc.status_code == 404:
        return IntakeError(404, "not found", f"{where}: no such endpoint (docs/intake.md lists them)").response()
    return IntakeError(exc.status_code, str(exc.detail).lower(), where, headers=dict(exc.headers or {})).response()


HANDLERS = {HTTPException: http_error}
