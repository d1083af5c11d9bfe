"""The simulated platform's database inspector and job pools over ``/_sim/database`` and ``/_sim/jobs``.

:class:`SimDatabase` is a :class:`~remediation.providers.capabilities.DatabaseInspector` and
:class:`~remediation.providers.capabilities.DatabaseActions`: the control plane answers with the same report models
``PostgresInspector`` returns, so runbooks cannot tell them apart. Reads never raise (an unreachable or
garbled control plane is a report with ``available=False`` and the reason); repairs raise
:class:`DatabaseActionError`. :class:`SimJobs` is the :class:`~remediation.providers.capabilities.Jobs` lever
(the platform's worker service); its failures raise :class:`PlatformError`.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any, TypeVar
from urllib.parse import quote

from pydantic import BaseModel, ValidationError

from remediation.providers.database import CreateIndex, DatabaseActionError
from remediation.providers.dbqueries import (
    IndexReport,
    LockReport,
    Presence,
    ScanReport,
    SessionReport,
    StatementReport,
)
from remediation.providers.platform import Job, PlatformError
from remediation.providers.sim_platform import ControlPlane

_R = TypeVar("_R", bound=BaseModel)


class SimDatabase:
    def __init__(self, plane: ControlPlane) -> None:
        self.plane = plane

    async def _read(self, path: str, model: type[_R], failed: Callable[[str], _R],
                    params: dict[str, str] | None = None) -> _R:
        try:
            body = await self.plane.json("GET", path, params=params)
            return model.model_validate(body)
        except PlatformError as exc:
            return failed(f"{path.lstrip('/')} failed: {exc}")
        except ValidationError as exc:
            return failed(f"{path.lstrip('/')} failed: not a {model.__name__} ({exc.error_count()} problem(s))")

    async def blocking_locks(self) -> LockReport:
        return await self._read("/database/locks", LockReport, lambda why: LockReport(available=False, reason=why))

    async def long_running(self, min_seconds: float) -> SessionReport:
        return await self._read(
            "/database/sessions", SessionReport,
            lambda why: SessionReport(available=False, reason=why, min_seconds=min_seconds),
            params={"min_seconds": f"{min_seconds:g}"})

    async def scan_stats(self, min_seq_scans: int) -> ScanReport:
        return await self._read(
            "/database/scans", ScanReport,
            lambda why: ScanReport(available=False, reason=why, min_seq_scans=min_seq_scans),
            params={"min_seq_scans": str(min_seq_scans)})

    async def unused_indexes(self) -> IndexReport:
        return await self._read("/database/indexes/unused", IndexReport,
                                lambda why: IndexReport(available=False, reason=why))

    async def top_statements(self, limit: int) -> StatementReport:
        return await self._read("/database/statements", StatementReport,
                                lambda why: StatementReport(available=False, reason=why), params={"limit": str(limit)})

    async def backend_present(self, pid: int) -> Presence:
        return await self._read("/database/backend", Presence, lambda why: Presence(available=False, reason=why),
                                params={"pid": str(pid)})

    async def index_present(self, schema_name: str, name: str) -> Presence:
        return await self._read("/database/index", Presence, lambda why: Presence(available=False, reason=why),
                                params={"schema": schema_name, "name": name})

    async def terminate_backend(self, pid: int) -> bool:
        if pid <= 0:
            raise DatabaseActionError(f"terminate_backend({pid}): not a backend pid")
        body = await self._act(f"terminate_backend({pid})", "/database/terminate", {"pid": pid})
        return bool(body.get("terminated"))

    async def create_index_concurrently(self, statement: CreateIndex) -> None:
        await self._act(statement.sql, "/database/indexes",
                        {"table": statement.table, "columns": list(statement.columns), "name": statement.name,
                         "schema": statement.schema_name})

    async def _act(self, what: str, path: str, body: dict[str, Any]) -> dict[str, Any]:
        try:
            answer = await self.plane.json("POST", path, json_body=body)
        except PlatformError as exc:
            raise DatabaseActionError(f"{what} failed: {_reason(exc)}") from exc
        if not isinstance(answer, dict):
            raise DatabaseActionError(f"{what} failed: unexpected answer {str(answer)[:200]}")
        return answer


class SimJobs:
    def __init__(self, plane: ControlPlane) -> None:
        self.plane = plane

    async def jobs(self, service: str) -> list[Job]:
        body = await self.plane.json("GET", "/jobs")
        try:
            return [Job.model_validate(item) for item in body["jobs"]]
        except (KeyError, TypeError, ValidationError) as exc:
            raise PlatformError(f"GET /jobs: not a job listing: {str(body)[:200]}") from exc

    async def set_workers(self, service: str, job: str, workers: int) -> int:
        body = await self.plane.json("POST", f"/jobs/{quote(job, safe='')}", json_body={"workers": workers})
        previous = body.get("previous") if isinstance(body, dict) else None
        if isinstance(previous, bool) or not isinstance(previous, int):
            raise PlatformError(f"POST /jobs/{job}: no previous worker count in {str(body)[:200]}")
        return previous


def _reason(exc: PlatformError) -> str:
    """The control plane's ``{"error": ...}`` message when there is one, else the whole platform error."""
    text = str(exc)
    start = text.find("{")
    if start >= 0:
        try:
            parsed = json.loads(text[start:])
        except ValueError:
            return text
        if isinstance(parsed, dict) and isinstance(parsed.get("error"), str):
            return f"{parsed['error']} ({text[:start].rstrip(': ')})"
    return text
