"""The simulated kamkmserve as an ASGI app: the app's own endpoints, its middleware, and the platform edge.

A request passes the edge (maintenance, an outage of the metrics function), then src/middleware.ts (the
/api rate limit and Clerk's headers), then the route, in that order, as on the real deployment.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import time
from collections.abc import AsyncIterator
from urllib.parse import quote

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Mount, Route

from kamkmserve_sim import httpshape as shape
from kamkmserve_sim.config import SimConfig
from kamkmserve_sim.control import control_routes
from kamkmserve_sim.exposition import health_json, metrics_page
from kamkmserve_sim.instances_lb import LoadBalancer
from kamkmserve_sim.jsfmt import js_iso, js_json
from kamkmserve_sim.junk import garbage_body, html_body
from kamkmserve_sim.ratelimit import RateDecision, client_identity
from kamkmserve_sim.routes import AppRequest, Outcome
from kamkmserve_sim.scenarios import SCENARIOS, start_scenario
from kamkmserve_sim.security_control import EDGE_BLOCKED_PAGE
from kamkmserve_sim.state import SimState, records_request
from kamkmserve_sim.time_control import time_routes
from kamkmserve_sim.traffic import Pacer, run_traffic
from kamkmserve_sim.uploads import parse_multipart_file

_INVALID_FORMAT = {"error": "Invalid format. Use: health, summary, full, or prometheus"}
_ADMIN_ONLY = {"error": "Unauthorized - Admin access required"}


def create_app(config: SimConfig, *, state: SimState | None = None) -> Starlette:
    if config.scenario not in SCENARIOS:
        raise ValueError(f"unknown scenario {config.scenario!r}; known: {', '.join(SCENARIOS)}")
    sim = state or SimState(config)
    pacer = Pacer(config.rps)  # the users: the wall-clock loop below, or each POST /_sim/time/advance

    @contextlib.asynccontextmanager
    async def lifespan(_: Starlette) -> AsyncIterator[None]:
        start_scenario(sim, config.scenario)
        # On virtual time nobody moves time but the control plane, so there is no background loop at all.
        traffic = None if sim.clock.manual is not None else asyncio.create_task(run_traffic(sim, config.rps, pacer))
        try:
            yield
        finally:
            sim.log.log("warn", f"Received {sim.shutdown_signal}, initiating graceful shutdown...")
            if traffic is not None:
                traffic.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await traffic
            sim.database.close()  # real PostgreSQL: the scenario's sessions and threads end with the server
            sim.security.close()  # and the audit writer's

    async def api_metrics(request: Request) -> Response:
        return await _metrics_endpoint(sim, request, api=True)

    async def monitoring_metrics(request: Request) -> Response:
        return await _metrics_endpoint(sim, request, api=False)

    async def monitoring_health(request: Request) -> Response:
        return _monitoring_json(sim, request, {"status": "ok", "time": js_iso(sim.clock.now_ms())})

    async def monitoring_ready(request: Request) -> Response:
        return _monitoring_json(sim, request, {"ready": True, "time": js_iso(sim.clock.now_ms())})

    async def anything_else(request: Request) -> Response:
        return await _app_route(sim, request)

    app = Starlette(routes=[
        Mount("/_sim", routes=[*control_routes(sim), *time_routes(sim, pacer)]),
        Route("/api/monitoring/metrics", api_metrics, methods=["GET", "HEAD"]),
        Route("/monitoring/metrics", monitoring_metrics, methods=["GET", "HEAD"]),
        Route("/monitoring/health", monitoring_health, methods=["GET", "HEAD"]),
        Route("/monitoring/ready", monitoring_ready, methods=["GET", "HEAD"]),
        Route("/{path:path}", anything_else,
              methods=["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]),
    ], lifespan=lifespan)
    app.add_middleware(LoadBalancer, sim=sim)  # passes through unless the scenario has instances (rolling-restart)
    app.state.sim = sim
    return app


def _forwarded_for(request: Request) -> str | None:
    # Next.js fills in X-Forwarded-For with the peer address when the client sent none (the captured
    # security events show "ip":"127.0.0.1" for plain curl).
    return request.headers.get("x-forwarded-for") or (request.client.host if request.client else None)


def _limit(sim: SimState, request: Request) -> RateDecision:
    identity = client_identity(_forwarded_for(request), request.headers.get("x-real-ip"))
    return sim.instance.limiter.hit(identity, sim.clock.now_ms())


def _edge_blocked(sim: SimState, request: Request) -> Response | None:
    """The edge's 403 for a blocked client (kamkmserve_sim.security): the app never sees the request."""
    if sim.security.edge_refuses(_forwarded_for(request), request.headers.get("x-real-ip")):
        return shape.edge_page(403, EDGE_BLOCKED_PAGE, "blocked", sim.clock.epoch_s())
    return None


def _monitoring_json(sim: SimState, request: Request, body: dict[str, object]) -> Response:
    """The static probes: 200 whatever state the app is in, as long as the edge lets the request through."""
    if (blocked := _edge_blocked(sim, request)) is not None:
        return blocked
    if sim.at_edge(request.url.path):
        return shape.edge_page(503, shape.EDGE_MAINTENANCE_PAGE, "maintenance", sim.clock.epoch_s())
    headers = [*shape.SECURITY_HEADERS, ("vary", shape.VARY_RSC), ("content-type", "application/json")]
    sim.count_app_request(200)
    return shape.node_response(200, headers, js_json(body).encode(), sim.clock.epoch_s())


async def _metrics_endpoint(sim: SimState, request: Request, *, api: bool) -> Response:
    path = request.url.path
    if (blocked := _edge_blocked(sim, request)) is not None:
        return blocked
    if sim.at_edge(path):
        return shape.edge_page(503, shape.EDGE_MAINTENANCE_PAGE, "maintenance", sim.clock.epoch_s())
    if sim.metrics_fault == "down":
        return shape.edge_page(503, shape.EDGE_UNAVAILABLE_PAGE, "function-unavailable", sim.clock.epoch_s())
    started = time.monotonic()
    slept = 0.0
    decision = _limit(sim, request) if api else None
    if decision is not None and not decision.allowed:
        return shape.too_many_requests(decision, path, sim.clock.epoch_s())
    if sim.metrics_fault == "slow":
        slept = sim.slow_seconds
        await sim.clock.sleep(slept)
    head = [*shape.SECURITY_HEADERS, *(shape.middleware_headers(decision, path) if api else ()),
            ("vary", shape.VARY_RSC)]
    status, own_headers, body = _metrics_body(sim, request, api=api)
    sim.count_app_request(status)
    if api and sim.request_metrics and records_request(path):
        fields = AppRequest(method=request.method, path=path, forwarded_for=_forwarded_for(request),
                            real_ip=request.headers.get("x-real-ip"),
                            user_agent=request.headers.get("user-agent")).fields()
        # On virtual time nothing really waited: the recorded duration is the simulated one.
        took_s = time.monotonic() - started if sim.clock.manual is None else slept
        sim.instance.collector.record_request(fields, round(took_s * 1000), status)
    return shape.node_response(status, [*head, *own_headers], body, sim.clock.epoch_s())


def _metrics_body(sim: SimState, request: Request, *, api: bool) -> tuple[int, list[shape.Header], bytes]:
    if sim.metrics_fault == "garbage":
        return 200, [("content-type", "text/plain")], garbage_body(sim.rng)
    if sim.metrics_fault == "html":
        return 200, [("content-type", "text/html; charset=utf-8")], html_body()
    if api:
        text = metrics_page(sim.instance.collector)
        return 200, [("cache-control", "no-store"), ("content-type", "text/plain; version=0.0.4")], text.encode()
    json_type: list[shape.Header] = [("content-type", "application/json")]
    # The route asks for the admin role first; with no Clerk context that always fails
    # (docs/reference/kamkmserve.md §2.2).
    fmt = request.query_params.get("format", "summary")
    if fmt == "health":
        return 200, json_type, health_json(sim.instance.collector, sim.clock.now_ms()).encode()
    if fmt in ("summary", "full", "prometheus"):
        return 403, json_type, js_json(_ADMIN_ONLY).encode()
    return 400, json_type, js_json(_INVALID_FORMAT).encode()


async def _app_route(sim: SimState, request: Request) -> Response:
    path = request.url.path
    if (blocked := _edge_blocked(sim, request)) is not None:
        return blocked
    if sim.at_edge(path):
        return shape.edge_page(503, shape.EDGE_MAINTENANCE_PAGE, "maintenance", sim.clock.epoch_s())
    is_api = path == "/api" or path.startswith("/api/")
    decision = _limit(sim, request) if is_api else None
    if decision is not None and not decision.allowed:
        return shape.too_many_requests(decision, path, sim.clock.epoch_s())
    outcome = sim.serve(await _app_request(request))
    # The simulated service time is real: probes that time a request see the release's latency.
    await sim.clock.sleep(outcome.duration_ms / 1000)
    return _render(sim, outcome, path, decision)


async def _app_request(request: Request) -> AppRequest:
    content_type = request.headers.get("content-type", "")
    upload = None
    json_body: object = None
    if request.method in ("POST", "PUT", "PATCH"):
        body = await request.body()
        if "multipart/form-data" in content_type.lower():
            upload = parse_multipart_file(content_type, body)
        else:
            with contextlib.suppress(ValueError):
                json_body = json.loads(body)
    return AppRequest(
        method=request.method, path=request.url.path, forwarded_for=_forwarded_for(request),
        real_ip=request.headers.get("x-real-ip"), user_agent=request.headers.get("user-agent"),
        request_id=request.headers.get("x-request-id"), content_type=content_type, upload=upload,
        json_body=json_body, authorization=request.headers.get("authorization"),
        session=request.cookies.get("__session"),  # a Clerk session (the sim's test users: kamkmserve_sim.identity)
    )


def _render(sim: SimState, outcome: Outcome, path: str, decision: RateDecision | None) -> Response:
    now = sim.clock.epoch_s()
    middleware = shape.middleware_headers(decision, path)
    if outcome.shape == "api":
        # NextResponse headers come out sorted by name (a fetch Headers object), after Next's vary.
        own = list(outcome.headers)
        if outcome.content_type:
            own.append(("content-type", outcome.content_type))
        own.sort()
        headers = [*shape.SECURITY_HEADERS, *middleware, ("vary", shape.VARY_RSC), *own]
        return shape.node_response(outcome.status, headers, outcome.body, now)
    if outcome.shape == "redirect":
        target = quote(f"http://localhost:{sim.port}{path}", safe="-_.!~*'()")
        headers = [*shape.SECURITY_HEADERS, ("location", f"{shape.SIGN_IN_URL}?redirect_url={target}"),
                   *shape.CLERK_SIGNED_OUT, ("x-clerk-redirect-to", "true")]
        return shape.node_response(307, headers, b"", now)
    vary = ("Vary", shape.VARY_RSC + ", Accept-Encoding")
    html = ("Content-Type", "text/html; charset=utf-8")
    no_cache = ("Cache-Control", "private, no-cache, no-store, max-age=0, must-revalidate")
    if outcome.shape == "page" and outcome.status == 200:
        before, after = shape.page_cache_headers(path)
        body = shape.page_html(path)
        etag = '"' + hashlib.sha1(body).hexdigest()[:14] + '"'
        headers = [*before, *shape.SECURITY_HEADERS, *middleware, vary, *shape.PRERENDER, *after,
                   ("ETag", etag), html]
        return shape.node_response(200, headers, body, now, content_length=True)
    if outcome.shape == "page":
        headers = [*shape.SECURITY_HEADERS, *middleware, no_cache, vary, html]
        return shape.node_response(outcome.status, headers, shape.ERROR_PAGE, now, content_length=True)
    headers = [*shape.SECURITY_HEADERS, *middleware, no_cache, vary, *shape.PRERENDER,
               ("ETag", shape.NOT_FOUND_ETAG), html]
    return shape.node_response(404, headers, shape.NOT_FOUND_PAGE, now, content_length=True)
