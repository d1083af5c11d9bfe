"""``/_sim/database`` and ``/_sim/jobs``: the simulated database's inspector and the platform's job pools.

The database endpoints answer with the reports of ``database_reports`` as JSON (what a PostgreSQL console reads
from ``pg_stat_activity``, ``pg_locks`` and the statistics views) and take two repairs with PostgreSQL's semantics.
On a real PostgreSQL backend the simulator's own console (``database_inspect``) reads that database. Bad input is
the control plane's 422 that says what was wrong (an index on a table or column that does not exist included); an
unknown job is a 404; a repair the database refuses (terminating the console's own session, a failed build) is a
409 with the database's reason.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pydantic import ValidationError
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from kamkmserve_sim.controlkit import BadInput, bad_input, control_endpoint, error, json_object
from kamkmserve_sim.database_reports import BadIndex, IndexRequest, Refused

if TYPE_CHECKING:
    from kamkmserve_sim.state import SimState

MAX_LIMIT = 100


def database_routes(sim: SimState) -> list[Route]:
    endpoint = control_endpoint(sim)
    return [
        Route("/database", endpoint(_get_database), methods=["GET"]),
        Route("/database/locks", endpoint(_get_locks), methods=["GET"]),
        Route("/database/sessions", endpoint(_get_sessions), methods=["GET"]),
        Route("/database/scans", endpoint(_get_scans), methods=["GET"]),
        Route("/database/indexes/unused", endpoint(_get_unused), methods=["GET"]),
        Route("/database/statements", endpoint(_get_statements), methods=["GET"]),
        Route("/database/backend", endpoint(_get_backend), methods=["GET"]),
        Route("/database/index", endpoint(_get_index), methods=["GET"]),
        Route("/database/terminate", endpoint(_post_terminate), methods=["POST"]),
        Route("/database/indexes", endpoint(_post_index), methods=["POST"]),
        Route("/jobs", endpoint(_get_jobs), methods=["GET"]),
        Route("/jobs/{name}", endpoint(_post_job), methods=["POST"]),
    ]


async def _get_database(sim: SimState, request: Request) -> Response:
    return JSONResponse(sim.database.public())


async def _get_locks(sim: SimState, request: Request) -> Response:
    return _report(await sim.database.backend.blocking_locks())


async def _get_sessions(sim: SimState, request: Request) -> Response:
    seconds = _number(request, "min_seconds", 0.0, 0.0, 86_400.0)
    return _report(await sim.database.backend.long_running(seconds))


async def _get_scans(sim: SimState, request: Request) -> Response:
    minimum = int(_number(request, "min_seq_scans", 0, 0, 10**12, integer=True))
    return _report(await sim.database.backend.scan_stats(minimum))


async def _get_unused(sim: SimState, request: Request) -> Response:
    return _report(await sim.database.backend.unused_indexes())


async def _get_statements(sim: SimState, request: Request) -> Response:
    limit = int(_number(request, "limit", 10, 1, MAX_LIMIT, integer=True))
    return _report(await sim.database.backend.top_statements(limit))


async def _get_backend(sim: SimState, request: Request) -> Response:
    pid = int(_number(request, "pid", 0, 1, 2**31 - 1, integer=True))
    if pid <= 0:
        raise BadInput("pid must be a positive integer (a backend process id)")
    return _report(await sim.database.backend.backend_present(pid))


async def _get_index(sim: SimState, request: Request) -> Response:
    schema = request.query_params.get("schema") or "public"
    name = request.query_params.get("name")
    if not name:
        raise BadInput("name must name an index")
    return _report(await sim.database.backend.index_present(schema, name))


async def _post_terminate(sim: SimState, request: Request) -> Response:
    body = await json_object(request)
    pid = body.get("pid")
    if isinstance(pid, bool) or not isinstance(pid, int) or pid <= 0:
        raise BadInput("pid must be a positive integer (a backend process id)")
    try:
        terminated = await sim.database.backend.terminate_backend(pid)
    except Refused as exc:
        return error(409, str(exc))
    return JSONResponse({"pid": pid, "terminated": terminated})


async def _post_index(sim: SimState, request: Request) -> Response:
    body = await json_object(request)
    columns = body.get("columns")
    if not isinstance(columns, list):
        raise BadInput("columns must be a list of column names")
    try:
        statement = IndexRequest.model_validate({
            "table": body.get("table"), "columns": tuple(columns), "name": body.get("name") or "",
            "schema": body.get("schema") or "public"})
    except ValidationError as exc:
        raise BadInput("; ".join(e["msg"] for e in exc.errors())) from None
    try:
        created = await sim.database.backend.create_index_concurrently(statement)
    except BadIndex as exc:
        return bad_input(f"{statement.sql}: {exc}")
    except Refused as exc:
        return error(409, str(exc))
    return JSONResponse({"name": statement.name, "statement": statement.sql, "created": created})


async def _get_jobs(sim: SimState, request: Request) -> Response:
    return JSONResponse({"jobs": sim.database.jobs.listing()})


async def _post_job(sim: SimState, request: Request) -> Response:
    name = request.path_params["name"]
    try:
        sim.database.jobs.get(name)
    except KeyError:
        raise KeyError(f"job {name}") from None
    body = await json_object(request)
    try:
        previous = sim.database.jobs.set_workers(name, body.get("workers"))  # type: ignore[arg-type]
    except ValueError as exc:
        raise BadInput(str(exc)) from None
    workers = sim.database.jobs.get(name).workers
    return JSONResponse({"name": name, "workers": workers, "previous": previous, "changed": previous != workers})


def _report(report: Any) -> Response:
    return JSONResponse(report.model_dump(mode="json"))


def _number(request: Request, key: str, default: float, low: float, high: float, *, integer: bool = False) -> float:
    raw = request.query_params.get(key)
    if raw is None:
        return default
    try:
        value = int(raw) if integer else float(raw)
    except ValueError:
        raise BadInput(f"{key} must be {'an integer' if integer else 'a number'}") from None
    if not low <= value <= high:
        raise BadInput(f"{key} must be between {low:g} and {high:g}")
    return value
