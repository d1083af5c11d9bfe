"""``/_sim/instances``: the instances and their load balancer, as EC2/ECS plus ELBv2 would expose them.

Writes are idempotent and say whether they ``changed`` anything, like the rest of the control plane. A scenario
without a fleet (the app on Vercel: one instance, no load balancer) answers 409 so that a caller cannot mistake it
for a fleet of one.

* ``GET  /_sim/instances``                 the load balancer's settings and counters, and every instance
* ``GET  /_sim/instances/<id>``            one instance
* ``POST /_sim/instances/<id>/drain``      deregister from the load balancer (in-flight requests finish)
* ``POST /_sim/instances/<id>/restore``    register again (traffic after the healthy threshold)
* ``POST /_sim/instances/<id>/restart``    SIGTERM the process; it comes back after the restart time
* ``POST /_sim/instances/faults``          ``{"after_restart": {"error_share", "paths", "extra_latency_ms"} | null}``
* ``/_sim/instances/<id>/direct/<path>``   the app on that instance, bypassing the load balancer (instances_lb)
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from kamkmserve_sim.controlkit import bad_input, error
from kamkmserve_sim.instances_config import FaultAfterRestart

if TYPE_CHECKING:
    from kamkmserve_sim.instances import Fleet
    from kamkmserve_sim.state import SimState

NO_FLEET = "this scenario runs a single instance with no load balancer (the app on Vercel); the rolling-restart " \
           "scenario has instances"


class _NoFleet(Exception):
    pass


def instance_routes(sim: SimState) -> list[Route]:
    def endpoint(handler: Callable[[Fleet, Request], Awaitable[Response]]) -> Callable[[Request], Awaitable[Response]]:
        async def run(request: Request) -> Response:
            sim.run_due()
            try:
                if sim.fleet is None:
                    raise _NoFleet
                return await handler(sim.fleet, request)
            except _NoFleet:
                return error(409, NO_FLEET)
            except KeyError as exc:
                return error(404, f"unknown {exc.args[0]}")
            except ValueError as exc:  # the fleet's refusals of a value are bad input
                return bad_input(str(exc))
        return run

    return [
        Route("/instances", endpoint(_list), methods=["GET"]),
        Route("/instances/faults", endpoint(_faults), methods=["POST"]),
        Route("/instances/{id}", endpoint(_one), methods=["GET"]),
        Route("/instances/{id}/drain", endpoint(_drain), methods=["POST"]),
        Route("/instances/{id}/restore", endpoint(_restore), methods=["POST"]),
        Route("/instances/{id}/restart", endpoint(_restart), methods=["POST"]),
    ]


async def _list(fleet: Fleet, request: Request) -> Response:
    return JSONResponse(fleet.public())


def _instance(fleet: Fleet, target_id: str, changed: bool | None = None) -> Response:
    target = fleet.get(target_id)
    body = fleet.public_target(target, fleet.advance())
    if changed is not None:
        body["changed"] = changed
    return JSONResponse(body)


async def _one(fleet: Fleet, request: Request) -> Response:
    return _instance(fleet, request.path_params["id"])


async def _drain(fleet: Fleet, request: Request) -> Response:
    target_id = request.path_params["id"]
    return _instance(fleet, target_id, fleet.deregister(target_id))


async def _restore(fleet: Fleet, request: Request) -> Response:
    target_id = request.path_params["id"]
    return _instance(fleet, target_id, fleet.register(target_id))


async def _restart(fleet: Fleet, request: Request) -> Response:
    target_id = request.path_params["id"]
    return _instance(fleet, target_id, fleet.restart(target_id))


async def _faults(fleet: Fleet, request: Request) -> Response:
    raw = await request.body()
    try:
        body: Any = json.loads(raw) if raw.strip() else {}
    except ValueError:
        raise ValueError("body is not JSON") from None
    if not isinstance(body, dict) or "after_restart" not in body:
        raise ValueError('body must be {"after_restart": {...} | null}')
    spec = body["after_restart"]
    try:
        fleet.fault_after_restart = None if spec is None else FaultAfterRestart.model_validate(spec)
    except ValidationError as exc:
        raise ValueError(f"after_restart: {exc.errors()[0]['msg']}") from None
    return JSONResponse(fleet.public())
