"""``/_sim/time``: what time the simulator thinks it is, and (on virtual time) the one way to make time pass.

``GET /_sim/time`` answers ``{"now_ms": <epoch ms>, "virtual": <bool>}``. ``POST /_sim/time/advance``
``{"seconds": s}`` moves a virtual clock on in ticks of ``traffic.TICK_S``, sending each tick's users and firing
the scenario's due events exactly as the wall-clock traffic loop would, then answers ``{"now_ms", "virtual": true}``.
On the wall clock it is a 409: nobody can make real time pass faster.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from kamkmserve_sim.controlkit import BadInput, control_endpoint, error, json_object
from kamkmserve_sim.state import SimState
from kamkmserve_sim.traffic import Pacer, advance

#: One advance covers at most a day: a typo of seconds for milliseconds should fail, not spin for minutes.
MAX_ADVANCE_S = 86_400.0
WALL_CLOCK = "this simulator runs on the wall clock"


def time_routes(sim: SimState, pacer: Pacer) -> list[Route]:
    endpoint = control_endpoint(sim)

    async def get_time(sim: SimState, request: Request) -> Response:
        return _now(sim)

    async def post_advance(sim: SimState, request: Request) -> Response:
        if sim.clock.manual is None:
            return error(409, WALL_CLOCK)
        body = await json_object(request)
        seconds = body.get("seconds")
        if isinstance(seconds, bool) or not isinstance(seconds, int | float) or not 0 <= seconds <= MAX_ADVANCE_S:
            raise BadInput(f"seconds must be a number between 0 and {MAX_ADVANCE_S:g}")
        advance(sim, pacer, float(seconds))
        return _now(sim)

    return [
        Route("/time", endpoint(get_time), methods=["GET"]),
        Route("/time/advance", endpoint(post_advance), methods=["POST"]),
    ]


def _now(sim: SimState) -> Response:
    return JSONResponse({"now_ms": sim.clock.now_ms(), "virtual": sim.clock.manual is not None})
