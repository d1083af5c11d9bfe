"""The simulated platform's security levers over ``/_sim/``: the edge block list, the upload allowlist, the upload
scanner (antivirus and its quarantine) and the app's audit table (``kamkmserve_sim.security_control``).

Each implements its Protocol of ``remediation.providers.security`` (``quarantine``: of
``remediation.providers.quarantine``) with the same semantics as the real adapters: reads of the antivirus, the
audit table and the quarantine never raise (a daemon that is down is ``unavailable``, an unreadable table is a
report with the reason), while the levers (block, unblock, set the allowlist) raise :class:`PlatformError`.
"""

from __future__ import annotations

from datetime import datetime

import httpx
from pydantic import ValidationError

from remediation.providers.audit import TABLE_MISSING
from remediation.providers.platform import PlatformError
from remediation.providers.quarantine import QuarantinedSample, QuarantineReport
from remediation.providers.security import AuditReport, Block, BlockKind, ScanVerdict, UploadAllowlist
from remediation.providers.sim_platform import ControlPlane, NotASimulator


def _iso(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


class SimBlocks:
    """:class:`~remediation.providers.capabilities.ActorBlocks`: the edge firewall's block list with expiry."""

    def __init__(self, plane: ControlPlane) -> None:
        self.plane = plane

    async def blocks(self) -> list[Block]:
        body = await self.plane.json("GET", "/blocks")
        try:
            return [_block(item) for item in body["blocks"]]
        except (KeyError, TypeError, ValidationError) as exc:
            raise PlatformError(f"GET /blocks: not a block list: {str(body)[:200]}") from exc

    async def block(self, kind: BlockKind, value: str, ttl_s: int, reason: str) -> Block:
        body = await self.plane.json("POST", "/blocks",
                                     json_body={"kind": kind, "value": value, "ttl_s": ttl_s, "reason": reason})
        try:
            return _block(body["block"])
        except (KeyError, TypeError, ValidationError) as exc:
            raise PlatformError(f"POST /blocks: no block in {str(body)[:200]}") from exc

    async def unblock(self, kind: BlockKind, value: str) -> bool:
        try:
            await self.plane.request("DELETE", "/blocks", params={"kind": kind, "value": value})
        except PlatformError as exc:
            if "HTTP 404" in str(exc):
                return False  # nothing to remove (expired, or never there): the state we wanted
            raise
        return True


def _block(item: dict[str, object]) -> Block:
    return Block.model_validate({k: item.get(k) for k in ("kind", "value", "expires_at", "reason")})


class SimUploadPolicy:
    """:class:`~remediation.providers.capabilities.UploadPolicy`: what ``/api/uploads`` accepts, at the edge config."""

    def __init__(self, plane: ControlPlane) -> None:
        self.plane = plane

    async def allowlist(self) -> UploadAllowlist:
        return _allowlist(await self.plane.json("GET", "/uploads/allowlist"), "GET")

    async def set_allowlist(self, allowlist: UploadAllowlist) -> UploadAllowlist:
        body = await self.plane.json("PUT", "/uploads/allowlist", json_body={
            "extensions": list(allowlist.extensions), "mime_types": list(allowlist.mime_types)})
        return _allowlist(body.get("previous") if isinstance(body, dict) else None, "PUT")


def _allowlist(body: object, method: str) -> UploadAllowlist:
    try:
        return UploadAllowlist.model_validate(body)
    except ValidationError as exc:
        raise PlatformError(f"{method} /uploads/allowlist: not an allowlist: {str(body)[:200]}") from exc


class SimAntivirus:
    """:class:`~remediation.providers.capabilities.Antivirus`: the platform's upload scanner."""

    def __init__(self, plane: ControlPlane) -> None:
        self.plane = plane

    async def _state(self) -> dict[str, object] | None:
        try:
            body = await self.plane.json("GET", "/antivirus")
        except NotASimulator:
            raise
        except PlatformError:
            return None
        return body if isinstance(body, dict) else None

    async def ping(self) -> bool:
        state = await self._state()
        return bool(state and state.get("available") is True)

    async def version(self) -> str | None:
        state = await self._state()
        version = state.get("version") if state else None
        return version if isinstance(version, str) and version else None

    async def scan(self, data: bytes) -> ScanVerdict:
        try:
            response = await self.plane.send("POST", "/antivirus/scan", content=data,
                                              headers={"content-type": "application/octet-stream"})
        except PlatformError as exc:
            return ScanVerdict(status="unavailable", detail=str(exc))
        if response.status_code == 503:
            return ScanVerdict(status="unavailable", detail=_error_text(response))
        if response.status_code >= 400:
            return ScanVerdict(status="error", detail=f"HTTP {response.status_code}: {_error_text(response)}")
        try:
            return ScanVerdict.model_validate(response.json())
        except (ValueError, ValidationError):
            return ScanVerdict(status="error", detail=f"not a verdict: {response.text[:200]!r}")

    async def reload(self) -> bool:
        """True when the daemon acknowledged; a failed request raises with what answered (never a bare False)."""
        body = await self.plane.json("POST", "/antivirus/reload")
        return isinstance(body, dict) and body.get("reloaded") is True


def _error_text(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return response.text[:200]
    return str(body.get("error")) if isinstance(body, dict) and "error" in body else response.text[:200]


class SimQuarantine:
    """:class:`~remediation.providers.capabilities.Quarantine`: what the platform's upload scanner detected and kept."""

    def __init__(self, plane: ControlPlane) -> None:
        self.plane = plane

    async def samples(self, since: datetime, limit: int = 100) -> QuarantineReport:
        try:
            body = await self.plane.json("GET", "/antivirus/detections",
                                         params={"since": _iso(since), "limit": str(limit)})
            samples = tuple(QuarantinedSample.model_validate(item) for item in body["detections"])
        except PlatformError as exc:
            return QuarantineReport(available=False, reason=f"quarantine unreadable: {exc}")
        except (KeyError, TypeError, ValidationError) as exc:
            return QuarantineReport(available=False, reason=f"quarantine unreadable: not a detection list ({exc})")
        return QuarantineReport(available=True, samples=samples)


class SimAuditLog:
    """:class:`~remediation.providers.capabilities.AuditLog`: ``kamkmserve_audit_log`` as the simulated app keeps it."""

    def __init__(self, plane: ControlPlane) -> None:
        self.plane = plane

    async def events(self, since: datetime, event_prefix: str = "upload.", limit: int = 5000) -> AuditReport:
        try:
            body = await self.plane.json("GET", "/audit", params={
                "since": _iso(since), "event_prefix": event_prefix, "limit": str(limit)})
            report = AuditReport.model_validate(body)
        except PlatformError as exc:
            return AuditReport(available=False, reason=f"audit log unreadable: {exc}")
        except ValidationError as exc:
            return AuditReport(available=False,
                               reason=f"audit log unreadable: not an audit report ({exc.error_count()} problem(s))")
        if report.table_missing:
            # The same words as the real reader's: what a missing table means for the incident.
            return report.model_copy(update={"reason": TABLE_MISSING})
        return report
