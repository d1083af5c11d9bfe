"""What the ``/_sim/`` control modules do alike: read a JSON object body, check a string field, answer an error.

Each control module keeps its own status for bad input (``control``: 422; ``database_control`` and
``security_control``: 400 via ``BadRequest``), so the helpers raise the exception class they are given.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

if TYPE_CHECKING:
    from kamkmserve_sim.state import SimState

Handler = Callable[[Request], Awaitable[Response]]
SimHandler = Callable[["SimState", Request], Awaitable[Response]]


class BadRequest(ValueError):
    """Input outside the contract: answered with 400 and this message."""


def error(status: int, message: str) -> Response:
    return JSONResponse({"error": message}, status_code=status)


async def json_object(request: Request, invalid: type[ValueError] = BadRequest, *,
                      allow_empty: bool = False) -> dict[str, Any]:
    raw = await request.body()
    if not raw.strip():
        if allow_empty:
            return {}
        raise invalid("a JSON object body is required")
    try:
        parsed = json.loads(raw)
    except ValueError:
        raise invalid("body is not JSON") from None
    if not isinstance(parsed, dict):
        raise invalid("body must be a JSON object")
    return parsed


def non_empty_string(body: dict[str, Any], key: str, invalid: type[ValueError] = BadRequest) -> str:
    value = body.get(key)
    if not isinstance(value, str) or not value:
        raise invalid(f"{key} must be a non-empty string")
    return value


def bad_request_endpoint(sim: SimState) -> Callable[[SimHandler], Handler]:
    """Run due scenario events, then the handler; ``BadRequest`` is a 400 and an unknown key a 404."""
    def endpoint(handler: SimHandler) -> Handler:
        async def run(request: Request) -> Response:
            sim.run_due()  # scheduled scenario events land before anyone reads the platform
            try:
                return await handler(sim, request)
            except BadRequest as exc:
                return error(400, str(exc))
            except KeyError as exc:
                return error(404, f"unknown {exc.args[0]}")
        return run
    return endpoint
