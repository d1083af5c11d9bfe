"""The alert receiver: a Starlette app built by :func:`create_app` from explicit dependencies.

Endpoints: ``POST /alerts/alertmanager``, ``POST /alerts/sentry``, ``POST /alerts/generic``,
``POST /logs/vercel`` (a Vercel Log Drain, remediation.intake.vercel_drain), ``POST /slack/interactions`` (Slack
approval buttons, remediation.intake.slack_interactions), ``GET /healthz``, ``GET /metrics`` (Prometheus text about
the service itself, remediation.intake.metrics; like /healthz it needs no credentials and shows only counts).
Status codes are part of the contract with senders (docs/reference/integrations.md §1.5):

* 2xx: stored (and, for Alertmanager/generic, the run started or already running);
* 4xx: the sender's fault, never retried by Alertmanager: 400 malformed JSON, 401 authentication
  (with ``WWW-Authenticate``), 408 the request did not arrive within the read deadline (the connection is
  closed), 409 a Sentry delivery whose signed body is stale (a replay), 413 too large, 422 schema (with a
  readable summary);
* 503: our fault and worth a retry: the store is unreachable, a run could not be started, intake is not
  configured, or an unexpected internal error. A bug answered 500 would look like a permanent failure
  of the delivery to some senders and a retryable one to others; 503 is at least honest about whose
  fault it is. Bad input never reaches that branch: it is rejected with a 4xx before any write.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Awaitable, Callable

from sqlalchemy.exc import SQLAlchemyError
from starlette.applications import Starlette
from starlette.background import BackgroundTask
from starlette.concurrency import run_in_threadpool
from starlette.middleware import Middleware
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from remediation.intake import alertmanager, generic, http_errors, sentry
from remediation.intake.auth import SeenRequests, check_sentry_signature, check_shared_secret
from remediation.intake.deadlines import BodyReadDeadline
from remediation.intake.logsafe import intake_logger
from remediation.intake.metrics import IntakeMetrics, metrics_endpoint
from remediation.intake.routing import Routes, default_routes
from remediation.intake.service import AlertOutcome, IntakeService, RunStart
from remediation.intake.slack_interactions import AnswerRelay, slack_interactions_endpoint
from remediation.intake.vercel_drain import drain_endpoint
from remediation.intake.wire import IntakeError, parse_json, read_body
from remediation.orchestration.starter import RunStarter
from remediation.providers.capabilities import Clock
from remediation.providers.clock import RealClock
from remediation.settings import Settings
from remediation.store import Store

log = intake_logger()

Endpoint = Callable[[Request], Awaitable[Response]]
_HEALTH_TIMEOUT_S = 5.0
# A 4xx is the sender's business and not logged, except these, which an operator may want to see.
_LOGGED_REFUSALS = {
    408: logging.INFO,  # a slow or stalled sender (one line per connection: a slowloris must not flood WARNING)
    409: logging.WARNING,  # a Sentry delivery whose signed body is stale: most likely a replay
}


def guarded(endpoint: Endpoint) -> Endpoint:
    """Map every failure to a deliberate status: IntakeError as given, store trouble and bugs to 503."""

    @functools.wraps(endpoint)
    async def wrapper(request: Request) -> Response:
        try:
            return await endpoint(request)
        except ClientDisconnect:
            # The sender hung up mid-request: nothing of ours failed and nobody is left to answer.
            log.info("%s %s: the client disconnected before its request was read", request.method, request.url.path)
            return IntakeError(400, "client disconnected", "the request was not read to its end").response()
        except IntakeError as exc:
            if exc.status >= 500:
                log.error("%s %s: %s", request.method, request.url.path, exc)
            elif exc.status in _LOGGED_REFUSALS:
                log.log(_LOGGED_REFUSALS[exc.status], "%s %s: %d %s: %s", request.method, request.url.path,
                        exc.status, exc.error, exc.detail)
            return exc.response()
        except (SQLAlchemyError, OSError, TimeoutError) as exc:
            log.warning("%s %s: store unavailable: %s", request.method, request.url.path, exc)
            detail = f"the incident store is unavailable ({type(exc).__name__}); retry later"
            return IntakeError(503, "store unavailable", detail).response()
        except Exception:
            log.exception("%s %s: internal error", request.method, request.url.path)
            return IntakeError(503, "internal error", "unexpected internal error; it has been logged").response()

    return wrapper


def _reply(source: str, outcomes: list[AlertOutcome], starts: list[RunStart], **extra: object) -> JSONResponse:
    failed = [s for s in starts if s.failed]
    body = {
        "source": source,
        "alerts": [o.to_json() for o in outcomes],
        "runs": [s.to_json() for s in starts],
        **extra,
    }
    if failed:
        body["error"] = "run start failed"
        body["detail"] = "the alerts are stored; starting a run failed and will be retried on redelivery"
    return JSONResponse(body, status_code=503 if failed else 200)


def create_app(
    settings: Settings,
    store: Store,
    starter: RunStarter,
    *,
    routes: Routes | None = None,
    clock: Clock | None = None,
    start_timeout_s: float = 10.0,
    seen_request_ids: int = 10_000,
    slack_relay: AnswerRelay | None = None,
    metrics: IntakeMetrics | None = None,
) -> Starlette:
    """Build the receiver. Nothing is read from the environment or global state: everything is passed in.

    ``routes`` defaults to the packaged ``routes.yaml``; ``clock`` (``now()``) dates alerts and judges
    Sentry timestamps; ``start_timeout_s`` bounds one ``starter.start`` call; ``seen_request_ids`` sizes
    the memories of Sentry ``Request-ID``s and of Sentry deliveries (by what their body says) already handled;
    ``slack_relay`` carries verified Slack clicks to their runs (default: through the Prefect API); ``metrics``
    holds the counters ``/metrics`` shows (default: new ones on a registry of this app's own).
    """
    the_clock: Clock = clock or RealClock()
    the_metrics = metrics or IntakeMetrics()
    service = IntakeService(settings, store, starter, routes or default_routes(), the_clock.now, start_timeout_s,
                            recorder=the_metrics)
    seen = SeenRequests(seen_request_ids)
    # Kept apart from Request-IDs: a replay comes with a fresh Request-ID, but its body's key is the original's.
    seen_deliveries = SeenRequests(seen_request_ids)
    limit = settings.intake_max_body_bytes
    if settings.intake_token is None and settings.intake_basic_password is None:
        log.warning("no intake credentials configured: Alertmanager and generic deliveries will be refused")
    if settings.sentry.client_secret is None:
        log.warning("no Sentry client secret configured: Sentry deliveries will be refused")
    if settings.reopen_cooldown_s <= settings.sentry.max_age_s + sentry.BODY_CLOCK_SKEW_S:
        log.warning(
            "REMEDIATE_REOPEN_COOLDOWN_S (%g) is not longer than REMEDIATE_SENTRY_MAX_AGE_S (%d) + %g s: a replayed "
            "Sentry delivery reaching a receiver that never saw the original could open a second incident",
            settings.reopen_cooldown_s, settings.sentry.max_age_s, sentry.BODY_CLOCK_SKEW_S,
        )

    @guarded
    async def alertmanager_endpoint(request: Request) -> Response:
        check_shared_secret(request.headers, settings)
        message, raw_alerts = alertmanager.parse(parse_json(await read_body(request, limit)))
        if message.truncatedAlerts:
            log.warning("Alertmanager group %s: %d alerts truncated", message.groupKey, message.truncatedAlerts)
        outcomes = await service.ingest(alertmanager.normalize(message, raw_alerts))
        starts = await service.start_runs(outcomes)
        return _reply(
            "alertmanager", outcomes, starts, group_key=message.groupKey, truncated_alerts=message.truncatedAlerts
        )

    @guarded
    async def generic_endpoint(request: Request) -> Response:
        check_shared_secret(request.headers, settings)
        raw = parse_json(await read_body(request, limit))
        alert = generic.parse(raw)
        outcomes = await service.ingest([generic.normalize(alert, raw)])
        starts = await service.start_runs(outcomes)
        return _reply("generic", outcomes, starts)

    @guarded
    async def sentry_endpoint(request: Request) -> Response:
        raw = await read_body(request, limit)
        check_sentry_signature(raw, request.headers, settings, the_clock.now().timestamp())
        request_id = (request.headers.get("request-id") or "").strip()
        if not request_id:
            raise IntakeError(400, "bad request", "missing Request-ID header")
        resource = (request.headers.get("sentry-hook-resource") or "").strip()
        if not resource:
            raise IntakeError(400, "bad request", "missing Sentry-Hook-Resource header")
        if not seen.claim(request_id):
            return JSONResponse({"source": "sentry", "status": "duplicate", "request_id": request_id})
        try:
            alert = sentry.normalize(resource, parse_json(raw))
            if alert is None:
                return JSONResponse({"source": "sentry", "status": "ignored", "resource": resource})
            # Before the memory of deliveries: a stale body is refused even by a receiver that never saw it.
            sentry.refuse_stale(alert, the_clock.now(), settings.sentry.max_age_s)
            if not seen_deliveries.claim(alert.delivery_key):
                log.info("POST %s: Sentry %s was already received; Request-ID %s is a duplicate of it",
                         request.url.path, alert.subject, request_id)
                return JSONResponse({"source": "sentry", "status": "duplicate", "request_id": request_id,
                                     "detail": f"Sentry {alert.subject} was already received"})
            try:
                outcomes = await service.ingest([alert.incoming])
            except BaseException:
                seen_deliveries.release(alert.delivery_key)
                raise
        except BaseException:
            seen.release(request_id)  # not processed: a redelivery must not be taken for a duplicate
            raise
        # Sentry wants an answer within 1 s: the run is started after the response is sent.
        body = {"source": "sentry", "status": "accepted", "alerts": [o.to_json() for o in outcomes]}
        return JSONResponse(body, background=BackgroundTask(service.start_runs_quietly, outcomes))

    @guarded
    async def healthz(request: Request) -> Response:
        try:
            await asyncio.wait_for(run_in_threadpool(store.ping), _HEALTH_TIMEOUT_S)
        except Exception as exc:
            log.warning("healthz: store unreachable: %s", exc)
            return JSONResponse({"status": "unavailable", "detail": f"store: {type(exc).__name__}"}, 503)
        return JSONResponse({"status": "ok"})

    app = Starlette(
        exception_handlers=http_errors.HANDLERS,  # every reply is JSON, Starlette's 404 and 405 included
        # Inside the app, so a stalled body is cut off however the app is served (remediation.intake.deadlines).
        middleware=[Middleware(BodyReadDeadline, timeout_s=settings.intake_read_timeout_s)],
        routes=[
            Route("/alerts/alertmanager", alertmanager_endpoint, methods=["POST"]),
            Route("/alerts/sentry", sentry_endpoint, methods=["POST"]),
            Route("/alerts/generic", generic_endpoint, methods=["POST"]),
            Route("/logs/vercel", guarded(drain_endpoint(settings, store, the_clock)), methods=["POST"]),
            Route("/slack/interactions", guarded(slack_interactions_endpoint(settings, store, the_clock, slack_relay)),
                  methods=["POST"]),
            Route("/healthz", healthz, methods=["GET"]),
            Route("/metrics", metrics_endpoint(the_metrics, store, the_clock.now), methods=["GET"]),
        ]
    )
    app.state.intake = service
    app.state.metrics = the_metrics
    return app
