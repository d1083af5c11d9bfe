"""``/_sim/identity`` and ``/_sim/status``: the identity provider's console and the public status page.

* ``GET /identity``: ``{"settings": {...secrets redacted}, "facts": {...}, "history": [...]}``.
* ``PATCH /identity`` ``{"name": <setting>, "value": <string>}``: ``{"name", "previous", "value", "changed"}``
  (secrets redacted); an unknown setting is a 404, a bad value a 422.
* ``GET /identity/users?ids=a,b``: ``{"roles": {"a": "ADMIN", "b": null}}`` (Clerk's ``publicMetadata.role``).
* ``GET /status``: ``{"incidents": [...]}``, newest first; ``POST /status`` ``{"title", "body", "status"}`` -> 201
  with the incident; ``PATCH /status/{id}`` ``{"body", "status"}`` -> the incident (404 unknown, 422 bad status).
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from kamkmserve_sim.controlkit import BadInput, bad_input, error, non_empty_string

if TYPE_CHECKING:
    from kamkmserve_sim.state import SimState

Handler = Callable[[Request], Awaitable[Response]]


def identity_routes(sim: SimState) -> list[Route]:
    def endpoint(handler: Callable[[SimState, Request], Awaitable[Response]]) -> Handler:
        async def run(request: Request) -> Response:
            sim.run_due()  # scheduled scenario events land before anyone reads the platform
            try:
                return await handler(sim, request)
            except KeyError as exc:
                return error(404, f"unknown {exc.args[0]}")
            except ValueError as exc:  # BadInput, and the provider's own refusals of a value (a bad TTL, status)
                return bad_input(str(exc))
        return run

    return [
        Route("/identity", endpoint(_get_identity), methods=["GET"]),
        Route("/identity", endpoint(_patch_identity), methods=["PATCH"]),
        Route("/identity/users", endpoint(_get_users), methods=["GET"]),
        Route("/status", endpoint(_get_status), methods=["GET"]),
        Route("/status", endpoint(_post_status), methods=["POST"]),
        Route("/status/{incident_id}", endpoint(_patch_status), methods=["PATCH"]),
    ]


async def _get_identity(sim: SimState, request: Request) -> Response:
    return JSONResponse(sim.identity.public())


async def _patch_identity(sim: SimState, request: Request) -> Response:
    body = await _body(request)
    name, value = non_empty_string(body, "name"), body.get("value")
    if not isinstance(value, str):
        raise BadInput("value must be a string")
    previous, changed = sim.identity.set(name, value)
    return JSONResponse({"name": name, "previous": previous, "value": sim.identity.public_settings()[name],
                         "changed": changed})


async def _get_users(sim: SimState, request: Request) -> Response:
    ids = [i for i in request.query_params.get("ids", "").split(",") if i]
    if len(ids) > 500:
        raise BadInput("at most 500 ids at a time")
    return JSONResponse({"roles": sim.identity.roles(ids)})


async def _get_status(sim: SimState, request: Request) -> Response:
    return JSONResponse({"incidents": sim.identity.status.listing()})


async def _post_status(sim: SimState, request: Request) -> Response:
    body = await _body(request)
    incident = sim.identity.status.post(non_empty_string(body, "title"), non_empty_string(body, "body"),
                                        non_empty_string(body, "status"))
    return JSONResponse(incident.public(), status_code=201)


async def _patch_status(sim: SimState, request: Request) -> Response:
    body = await _body(request)
    incident_id = request.path_params["incident_id"]
    if incident_id not in sim.identity.status.incidents:
        raise KeyError(f"status incident {incident_id}")
    incident = sim.identity.status.update(incident_id, non_empty_string(body, "body"), non_empty_string(body, "status"))
    return JSONResponse(incident.public())


async def _body(request: Request) -> dict[str, Any]:
    try:
        parsed = json.loads(await request.body() or b"null")
    except ValueError:
        raise BadInput("body is not JSON") from None
    if not isinstance(parsed, dict):
        raise BadInput("body must be a JSON object")
    return parsed
