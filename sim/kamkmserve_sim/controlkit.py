"""What the ``/_sim/`` control modules do alike: read a JSON object body, check a string field, answer an error.

Bad input to any ``/_sim/`` endpoint is one answer: ``422`` with ``{"error": "<what was wrong>"}`` (:func:`bad_input`),
whichever module serves it, so a client needs one rule for "you asked wrongly". (The app-facing routes that mimic
kamkmserve answer with whatever status the real app gives; they never use this.)
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
BAD_INPUT = 422


class BadInput(ValueError):
    """Input outside the contract: answered by :func:`bad_input` with this message."""


def error(status: int, message: str) -> Response:
    return JSONResponse({"error": message}, status_code=status)


def bad_input(message: str) -> Response:
    """The one answer to bad input on ``/_sim/``: 422, and the message names the problem."""
    return error(BAD_INPUT, message)


async def json_object(request: Request, *, allow_empty: bool = False) -> dict[str, Any]:
    raw = await request.body()
    if not raw.strip():
        if allow_empty:
            return {}
        raise BadInput("a JSON object body is required")
    try:
        parsed = json.loads(raw)
    except ValueError:
        raise BadInput("body is not JSON") from None
    if not isinstance(parsed, dict):
        raise BadInput("body must be a JSON object")
    return parsed


def non_empty_string(body: dict[str, Any], key: str) -> str:
    value = body.get(key)
    if not isinstance(value, str) or not value:
        raise BadInput(f"{key} must be a non-empty string")
    return value


def control_endpoint(sim: SimState, *, conflicts: tuple[type[Exception], ...] = ()) -> Callable[[SimHandler], Handler]:
    """Run due scenario events, then the handler: ``BadInput`` is :func:`bad_input`, an unknown key a 404, and the
    module's ``conflicts`` (a state the request cannot apply to) a 409."""
    def endpoint(handler: SimHandler) -> Handler:
        async def run(request: Request) -> Response:
            sim.run_due()  # scheduled scenario events land before anyone reads the platform
            try:
                return await handler(sim, request)
            except BadInput as exc:
                return bad_input(str(exc))
            except KeyError as exc:
                return error(404, f"unknown {exc.args[0]}")
            except conflicts as exc:
                return error(409, str(exc))
        return run
    return endpoint
