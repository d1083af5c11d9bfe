"""The platform control plane under ``/_sim/``: stands in for Vercel's, the edge's and Sentry's APIs.

Our remediation providers call exactly these endpoints, so the shapes here are a contract. Every write is
idempotent and says whether it ``changed`` anything. Never rate limited; never shows a release's fault.
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from kamkmserve_sim.applog import Stream
from kamkmserve_sim.capacity import MAX_REPLICAS, SERVICE
from kamkmserve_sim.controlkit import BadInput, bad_input, control_endpoint, json_object, non_empty_string
from kamkmserve_sim.database_control import database_routes
from kamkmserve_sim.faults import Fault
from kamkmserve_sim.identity_control import identity_routes
from kamkmserve_sim.instances_control import instance_routes
from kamkmserve_sim.jsfmt import parse_iso_ms
from kamkmserve_sim.platform import PlatformConflict
from kamkmserve_sim.scenarios import SCENARIOS, start_scenario
from kamkmserve_sim.security_control import security_routes
from kamkmserve_sim.state import METRICS_FAULTS, SimState


def control_routes(sim: SimState) -> list[Route]:
    endpoint = control_endpoint(sim, conflicts=(PlatformConflict,))
    return [
        Route("/state", endpoint(_get_state), methods=["GET"]),
        Route("/releases", endpoint(_get_releases), methods=["GET"]),
        Route("/releases", endpoint(_post_release), methods=["POST"]),
        Route("/releases/rollback", endpoint(_post_rollback), methods=["POST"]),
        Route("/maintenance", endpoint(_get_maintenance), methods=["GET"]),
        Route("/maintenance", endpoint(_post_maintenance), methods=["POST"]),
        Route("/flags", endpoint(_get_flags), methods=["GET"]),
        Route("/flags", endpoint(_post_flag), methods=["POST"]),
        Route("/logs", endpoint(_get_logs), methods=["GET"]),
        Route("/errors", endpoint(_get_errors), methods=["GET"]),
        Route("/faults", endpoint(_post_faults), methods=["POST"]),
        Route("/scenario", endpoint(_post_scenario), methods=["POST"]),
        *database_routes(sim),  # /database/... and /jobs (kamkmserve_sim.database_control)
        *security_routes(sim),  # /blocks, /uploads/allowlist, /antivirus/..., /audit (kamkmserve_sim.security_control)
        *identity_routes(sim),  # /identity, /identity/users, /status (kamkmserve_sim.identity_control)
        *instance_routes(sim),  # /instances... (kamkmserve_sim.instances_control)
        Route("/capacity", endpoint(_get_capacity), methods=["GET"]),
        Route("/capacity", endpoint(_post_capacity), methods=["POST"]),
    ]


async def _get_state(sim: SimState, request: Request) -> Response:
    return JSONResponse(sim.public_state())


async def _get_releases(sim: SimState, request: Request) -> Response:
    return JSONResponse(sim.releases.listing())


async def _post_release(sim: SimState, request: Request) -> Response:
    body = await json_object(request)
    version = non_empty_string(body, "version")
    raw_fault = body.get("fault")
    fault = None
    if raw_fault is not None:
        if not isinstance(raw_fault, dict):
            raise BadInput("fault must be an object or null")
        share = raw_fault.get("error_share", 0.0)
        if isinstance(share, bool) or not isinstance(share, int | float) or not 0.0 <= share <= 1.0:
            raise BadInput("fault.error_share must be a number in [0, 1]")
        paths = raw_fault.get("paths", [])
        if not isinstance(paths, list) or not all(isinstance(p, str) and p.startswith("/") for p in paths):
            raise BadInput("fault.paths must be a list of path prefixes starting with '/'")
        latency = raw_fault.get("extra_latency_ms", 0)
        if isinstance(latency, bool) or not isinstance(latency, int) or latency < 0:
            raise BadInput("fault.extra_latency_ms must be a non-negative integer")
        fault = Fault(error_share=float(share), paths=tuple(paths), extra_latency_ms=latency)
    release = sim.releases.deploy(version, fault, sim.clock.now_ms())
    return JSONResponse(sim.releases.public(release), status_code=201)


async def _post_rollback(sim: SimState, request: Request) -> Response:
    body = await json_object(request, allow_empty=True)
    target = body.get("to")
    if target is not None and not isinstance(target, str):
        raise BadInput("to must be a release id")
    if target is not None:
        try:
            sim.releases.get(target)
        except KeyError:
            raise KeyError(f"release {target}") from None
    release, changed = sim.releases.rollback(target, sim.clock.now_ms())
    return JSONResponse({"current": sim.releases.public(release), "changed": changed})


async def _get_maintenance(sim: SimState, request: Request) -> Response:
    return JSONResponse({"prefixes": list(sim.edge.maintenance)})


async def _post_maintenance(sim: SimState, request: Request) -> Response:
    body = await json_object(request)
    prefix = non_empty_string(body, "prefix")
    if not prefix.startswith("/"):
        raise BadInput("prefix must start with '/'")
    changed = sim.edge.set_maintenance(prefix, _bool(body, "enabled"))
    return JSONResponse({"prefixes": list(sim.edge.maintenance), "changed": changed})


async def _get_flags(sim: SimState, request: Request) -> Response:
    return JSONResponse({"flags": sim.edge.public_flags(), "history": list(sim.edge.flag_history)})


async def _post_flag(sim: SimState, request: Request) -> Response:
    body = await json_object(request)
    name = non_empty_string(body, "name")
    changed = sim.edge.set_flag(name, _bool(body, "enabled"), sim.clock.now_ms())
    return JSONResponse({**sim.edge.public_flag(name), "changed": changed})


async def _get_logs(sim: SimState, request: Request) -> Response:
    params = request.query_params
    since_ms = None
    if params.get("since"):
        try:
            since_ms = parse_iso_ms(params["since"])
        except ValueError:
            raise BadInput("since must be an ISO-8601 timestamp") from None
    try:
        limit = int(params.get("limit", "1000"))
    except ValueError:
        raise BadInput("limit must be an integer") from None
    if limit < 0:
        raise BadInput("limit must not be negative")
    stream = params.get("stream")
    if stream not in (None, "stdout", "stderr"):
        raise BadInput("stream must be stdout or stderr")
    wanted: Stream | None = "stdout" if stream == "stdout" else "stderr" if stream == "stderr" else None
    lines = sim.log.lines(since_ms=since_ms, limit=limit, stream=wanted)
    text = "".join(line.text + "\n" for line in lines)
    return PlainTextResponse(text, media_type="application/x-ndjson")


async def _get_errors(sim: SimState, request: Request) -> Response:
    return JSONResponse(sim.errors.listing())


async def _post_faults(sim: SimState, request: Request) -> Response:
    body = await json_object(request, allow_empty=True)
    if "metrics" in body:
        if body["metrics"] not in METRICS_FAULTS:
            raise BadInput(f"metrics must be one of {', '.join(METRICS_FAULTS)}")
        sim.metrics_fault = body["metrics"]
    if "slow_seconds" in body:
        seconds = body["slow_seconds"]
        if isinstance(seconds, bool) or not isinstance(seconds, int | float) or not 0 <= seconds <= 600:
            raise BadInput("slow_seconds must be a number between 0 and 600")
        sim.slow_seconds = float(seconds)
    if "request_metrics" in body:
        sim.request_metrics = _bool(body, "request_metrics")
    return JSONResponse(sim.public_state())


async def _post_scenario(sim: SimState, request: Request) -> Response:
    body = await json_object(request)
    name = non_empty_string(body, "name")
    if name not in SCENARIOS:
        raise KeyError(f"scenario {name}")
    start_scenario(sim, name)
    return JSONResponse(sim.public_state())


async def _get_capacity(sim: SimState, request: Request) -> Response:
    _capacity_service(request.query_params.get("service"))
    return JSONResponse({"service": SERVICE, "replicas": sim.load.replicas})


async def _post_capacity(sim: SimState, request: Request) -> Response:
    """Set the replica count (idempotent). Bad input is the control plane's 422 that says what was wrong."""
    body = await json_object(request)
    service = body.get("service")
    if service is not None and not isinstance(service, str):
        return bad_input("service must be a string")
    _capacity_service(service)
    replicas = body.get("replicas")
    if isinstance(replicas, bool) or not isinstance(replicas, int) or not 1 <= replicas <= MAX_REPLICAS:
        return bad_input(f"replicas must be an integer between 1 and {MAX_REPLICAS}")
    changed = sim.load.scale(replicas)
    return JSONResponse({"service": SERVICE, "replicas": sim.load.replicas, "changed": changed})


def _capacity_service(service: str | None) -> None:
    if service not in (None, SERVICE):
        raise KeyError(f"service {service}")


def _bool(body: dict[str, Any], key: str) -> bool:
    value = body.get(key)
    if not isinstance(value, bool):
        raise BadInput(f"{key} must be true or false")
    return value
