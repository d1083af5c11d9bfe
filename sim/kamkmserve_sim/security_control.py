"""``/_sim/blocks``, ``/_sim/uploads/allowlist``, ``/_sim/antivirus`` and ``/_sim/audit``: the security levers of
the simulated platform, as an edge firewall, an edge-config store, a scanning service and the app's database offer
them. The remediation adapters (``remediation.providers.sim_security``) speak exactly these shapes.

Contract: JSON in and out (the scanner takes raw bytes); bad input is the control plane's 422 whose ``error`` says
what was wrong; a block that does not exist is a 404; a scanner that is down answers 503 (never a verdict). Every
write is idempotent and says whether it changed anything.
"""

from __future__ import annotations

import ipaddress
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, get_args

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from kamkmserve_sim.controlkit import BadInput, control_endpoint, error, json_object
from kamkmserve_sim.jsfmt import parse_iso_ms
from kamkmserve_sim.security import BLOCK_KINDS, AvMode
from kamkmserve_sim.uploads import MAX_BYTES

if TYPE_CHECKING:
    from kamkmserve_sim.state import SimState

MAX_BLOCK_TTL_S = 7 * 86_400  # the simulated firewall's own ceiling; our policy caps far lower
MAX_LIMIT = 5000
EDGE_BLOCKED_PAGE = (
    b"<!DOCTYPE html><html><head><title>403: FORBIDDEN</title></head><body>"
    b"<h1>403: FORBIDDEN</h1><p>Your address is blocked by the site&#39;s firewall.</p></body></html>"
)


def security_routes(sim: SimState) -> list[Route]:
    endpoint = control_endpoint(sim)
    return [
        Route("/security", endpoint(_get_security), methods=["GET"]),
        Route("/blocks", endpoint(_get_blocks), methods=["GET"]),
        Route("/blocks", endpoint(_post_block), methods=["POST"]),
        Route("/blocks", endpoint(_delete_block), methods=["DELETE"]),
        Route("/uploads/allowlist", endpoint(_get_allowlist), methods=["GET"]),
        Route("/uploads/allowlist", endpoint(_put_allowlist), methods=["PUT"]),
        Route("/antivirus", endpoint(_get_antivirus), methods=["GET"]),
        Route("/antivirus", endpoint(_post_antivirus), methods=["POST"]),
        Route("/antivirus/scan", endpoint(_post_scan), methods=["POST"]),
        Route("/antivirus/reload", endpoint(_post_reload), methods=["POST"]),
        Route("/antivirus/detections", endpoint(_get_detections), methods=["GET"]),
        Route("/audit", endpoint(_get_audit), methods=["GET"]),
    ]


async def _get_security(sim: SimState, request: Request) -> Response:
    return JSONResponse(sim.security.public())


# -- block list -------------------------------------------------------------------------------------------------
async def _get_blocks(sim: SimState, request: Request) -> Response:
    blocks = sim.security.blocks
    return JSONResponse({"blocks": [b.public() for b in blocks.active(sim.clock.now_ms())], "refused": blocks.refused})


async def _post_block(sim: SimState, request: Request) -> Response:
    body = await json_object(request)
    kind, value = _actor(body.get("kind"), body.get("value"))
    ttl = body.get("ttl_s")
    if isinstance(ttl, bool) or not isinstance(ttl, int) or not 1 <= ttl <= MAX_BLOCK_TTL_S:
        raise BadInput(f"ttl_s must be an integer number of seconds between 1 and {MAX_BLOCK_TTL_S}")
    reason = body.get("reason", "")
    if not isinstance(reason, str):
        raise BadInput("reason must be a string")
    entry, created = sim.security.blocks.block(kind, value, ttl, reason[:500], sim.clock.now_ms())  # type: ignore[arg-type]
    return JSONResponse({"block": entry.public(), "changed": created}, status_code=201 if created else 200)


async def _delete_block(sim: SimState, request: Request) -> Response:
    kind, value = _actor(request.query_params.get("kind"), request.query_params.get("value"))
    if not sim.security.blocks.unblock(kind, value, sim.clock.now_ms()):  # type: ignore[arg-type]
        raise KeyError(f"block {kind} {value}")
    return JSONResponse({"removed": True, "kind": kind, "value": value})


def _actor(kind: object, value: object) -> tuple[str, str]:
    if kind not in BLOCK_KINDS:
        raise BadInput(f"kind must be one of {', '.join(BLOCK_KINDS)}")
    if not isinstance(value, str) or not value.strip():
        raise BadInput("value must be a non-empty string")
    if kind == "ip":
        try:
            ipaddress.ip_network(value.strip(), strict=False)
        except ValueError:
            raise BadInput(f"value {value[:80]!r} is not an IP address or network") from None
    return str(kind), value.strip()


# -- upload allowlist -------------------------------------------------------------------------------------------
async def _get_allowlist(sim: SimState, request: Request) -> Response:
    return JSONResponse(sim.security.allowlist.public())


async def _put_allowlist(sim: SimState, request: Request) -> Response:
    body = await json_object(request)
    extensions = _strings(body, "extensions")
    mime_types = _strings(body, "mime_types")
    for ext in extensions:
        if not ext.startswith(".") or len(ext) < 2 or ext != ext.lower() or any(c in ext for c in " ,/"):
            raise BadInput(f"extension {ext!r} must be lower case and start with a dot, like '.png'")
    for mime in mime_types:
        if mime != mime.lower() or mime.count("/") != 1 or any(c in mime for c in " ,") or mime.startswith("/") \
                or mime.endswith("/"):
            raise BadInput(f"MIME type {mime!r} must be lower case type/subtype, like 'image/png'")
    allowlist = sim.security.allowlist
    before = (allowlist.extensions, allowlist.mime_types)
    previous = allowlist.replace(tuple(extensions), tuple(mime_types))
    return JSONResponse({**allowlist.public(), "previous": previous,
                         "changed": before != (allowlist.extensions, allowlist.mime_types)})


def _strings(body: dict[str, Any], key: str) -> list[str]:
    value = body.get(key)
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise BadInput(f"{key} must be a list of strings (an empty list allows nothing)")
    return list(dict.fromkeys(value))  # duplicates dropped, order kept


# -- antivirus --------------------------------------------------------------------------------------------------
async def _get_antivirus(sim: SimState, request: Request) -> Response:
    return JSONResponse(_antivirus_state(sim))


async def _post_antivirus(sim: SimState, request: Request) -> Response:
    """Switch the scanner: ``available`` false stands for a daemon that is down; ``mode`` is the app's AV mode."""
    body = await json_object(request)
    scanner = sim.security.scanner
    if "available" in body:
        if not isinstance(body["available"], bool):
            raise BadInput("available must be true or false")
        scanner.available = body["available"]
    if "mode" in body:
        if body["mode"] not in get_args(AvMode):
            raise BadInput(f"mode must be one of {', '.join(get_args(AvMode))}")
        scanner.mode = body["mode"]
    return JSONResponse(_antivirus_state(sim))


def _antivirus_state(sim: SimState) -> dict[str, object]:
    scanner = sim.security.scanner
    return {"mode": scanner.mode, "engine": scanner.engine, "available": scanner.available,
            "version": scanner.version(), "reloads": scanner.reloads, "scans": scanner.scans,
            "detections": len(scanner.quarantine)}


async def _post_scan(sim: SimState, request: Request) -> Response:
    data = await request.body()
    if not data:
        raise BadInput("the request body must be the bytes to scan")
    if len(data) > MAX_BYTES:
        raise BadInput(f"at most {MAX_BYTES} bytes can be scanned")
    verdict = sim.security.scanner.scan(data)
    if verdict.status == "unavailable":
        return error(503, f"antivirus unavailable: {verdict.detail}")
    return JSONResponse(verdict.public())


async def _post_reload(sim: SimState, request: Request) -> Response:
    scanner = sim.security.scanner
    if not scanner.reload():
        return error(503, f"antivirus unavailable: {scanner.engine} did not reload")
    return JSONResponse({"reloaded": True, "reloads": scanner.reloads})


async def _get_detections(sim: SimState, request: Request) -> Response:
    since = _since(request, default=None)
    limit = _limit(request, 100)
    found = sim.security.scanner.detections(since, limit)
    return JSONResponse({"detections": [d.public() for d in found]})


# -- audit table ------------------------------------------------------------------------------------------------
async def _get_audit(sim: SimState, request: Request) -> Response:
    """``kamkmserve_audit_log`` rows as an AuditReport (a missing table is ``table_missing``, never an error)."""
    since_ms = _since(request, default=sim.clock.now_ms() - 3_600_000)
    assert since_ms is not None
    prefix = request.query_params.get("event_prefix", "upload.")
    limit = _limit(request, MAX_LIMIT)
    since = datetime.fromtimestamp(since_ms / 1000, UTC)
    return JSONResponse(await sim.security.audit.report(since, prefix, limit))


def _since(request: Request, *, default: int | None) -> int | None:
    raw = request.query_params.get("since")
    if not raw:
        return default
    try:
        return parse_iso_ms(raw)
    except ValueError:
        raise BadInput("since must be an ISO-8601 timestamp") from None


def _limit(request: Request, default: int) -> int:
    raw = request.query_params.get("limit")
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise BadInput("limit must be an integer") from None
    if not 1 <= value <= MAX_LIMIT:
        raise BadInput(f"limit must be between 1 and {MAX_LIMIT}")
    return value
