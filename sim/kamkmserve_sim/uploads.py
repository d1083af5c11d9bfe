"""``POST /api/uploads`` (docs/reference/kamkmserve.md §7): quota, content-type, file field, validation order, metrics
and logs."""

from __future__ import annotations

import posixpath
from collections.abc import Callable
from dataclasses import dataclass, field
from email.parser import BytesParser
from email.policy import HTTP

from kamkmserve_sim.applog import AppLog
from kamkmserve_sim.collector import MetricsCollector
from kamkmserve_sim.jsfmt import js_iso
from kamkmserve_sim.security_audit import AuditDone, AuditRow

MAX_BYTES = 10 * 1024 * 1024
PER_HOUR = 100
ALLOWED_EXT = (".png", ".jpg", ".jpeg", ".webp", ".pdf")
ALLOWED_MIME = ("image/png", "image/jpeg", "image/webp", "application/pdf")
_HOUR_MS = 3_600_000


@dataclass(frozen=True)
class UploadFile:
    filename: str
    client_type: str | None
    data: bytes


@dataclass(frozen=True)
class UploadRequest:
    forwarded_for: str | None
    real_ip: str | None
    user_agent: str | None
    content_type: str
    file: UploadFile | None


@dataclass(frozen=True)
class UploadAnswer:
    status: int
    body: dict[str, object]
    headers: tuple[tuple[str, str], ...] = ()


@dataclass
class UploadQuota:
    """The per-instance ``__uploadRateStore`` fallback (no Upstash)."""

    windows: dict[str, list[int]] = field(default_factory=dict)  # key -> [count, reset_at_ms]

    def count(self, ip: str, now_ms: int) -> int | None:
        """The new count, or None on the first hit of a window (the app sets no quota headers then)."""
        key = f"upload:ip:{ip}:{js_iso(now_ms)[:13]}"
        window = self.windows.get(key)
        if window is None or now_ms > window[1]:
            self.windows[key] = [1, now_ms + _HOUR_MS]
            return None
        window[0] += 1
        return window[0]


def detect_mime(data: bytes) -> str | None:
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if data.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if data.startswith(b"RIFF") and len(data) > 12 and data[8:12] == b"WEBP":
        return "image/webp"
    if data.startswith(b"%PDF-"):
        return "application/pdf"
    return None


@dataclass(frozen=True)
class UploadRules:
    """What ``validateUpload`` checks against: the allowlists (env vars in the app, an edge-config value in the
    simulator) and the AV step. ``scan`` is the ``AVSCAN_URL`` hook of mode ``scan``: (file, mime, ext) -> the
    reason it failed, or None when clean (kamkmserve_sim.security)."""

    extensions: tuple[str, ...] = ALLOWED_EXT
    mime_types: tuple[str, ...] = ALLOWED_MIME
    av_mode: str = "off"
    scan: Callable[[UploadFile, str, str], str | None] | None = None


#: ``writeAuditLog``: the row and a callback with the insert's error (None: written); see security_audit.
AuditWriter = Callable[[AuditRow, AuditDone], None]


def validate(file: UploadFile, av_mode: str = "off", rules: UploadRules | None = None
             ) -> tuple[str | None, str, str]:
    """(error or None, mime, ext) in validateUpload's check order: size, extension, MIME, antivirus."""
    rules = rules or UploadRules(av_mode=av_mode)
    if len(file.data) > MAX_BYTES:
        return f"File too large. Max {MAX_BYTES} bytes", "", ""
    ext = posixpath.splitext(file.filename or "")[1].lower()
    if ext not in rules.extensions:
        return f"File extension not allowed: {ext or '(none)'}", "", ext
    mime = detect_mime(file.data) or (file.client_type or "").lower()
    if mime not in rules.mime_types:
        return f"MIME not allowed: {mime or 'unknown'}", mime, ext
    if rules.av_mode == "reject":
        return "Malware scan failed: simulated-detection", mime, ext
    if rules.av_mode == "scan" and rules.scan is not None:
        try:
            reason = rules.scan(file, mime, ext)
        except Exception:
            reason = "scan-error"  # avscan.ts's catch: fail-closed
        if reason is not None:
            return f"Malware scan failed: {reason}" if reason else "Malware scan failed", mime, ext
    return None, mime, ext


def handle_upload(request: UploadRequest, *, quota: UploadQuota, collector: MetricsCollector, log: AppLog,
                  now_ms: int, duration_ms: int, audit_error: str | None, av_mode: str = "off",
                  rules: UploadRules | None = None, audit: AuditWriter | None = None) -> UploadAnswer:
    """The route. ``audit_error`` is the insert error of every audit write when no ``audit`` sink is given (an
    unmigrated table, an unreachable database)."""
    # The route's own IP parsing: an absent X-Forwarded-For gives "" (not "unknown"), as in the code.
    ip = (request.forwarded_for or "").split(",")[0].strip()
    count = quota.count(ip, now_ms)
    # NextResponse lower-cases header names, so these print as x-upload-* whatever the code wrote.
    quota_headers: tuple[tuple[str, str], ...] = ()
    if count is not None:
        if count > PER_HOUR:
            _audit(log, audit, audit_error, AuditRow("upload.quota_exceeded", ip=ip or None,
                                                     metadata={"limit": PER_HOUR, "count": count}))
            return UploadAnswer(429, {"error": "Upload quota exceeded"},
                                (("x-upload-limit", str(PER_HOUR)), ("x-upload-remaining", "0")))
        quota_headers = (("x-upload-limit", str(PER_HOUR)), ("x-upload-remaining", str(max(PER_HOUR - count, 0))))

    answer, row = _validated(request, collector, log, duration_ms, rules or UploadRules(av_mode=av_mode),
                             quota_headers)
    _audit(log, audit, audit_error, row)  # fire-and-forget, after the answer is decided
    return answer


def _validated(request: UploadRequest, collector: MetricsCollector, log: AppLog, duration_ms: int,
               rules: UploadRules, quota_headers: tuple[tuple[str, str], ...]) -> tuple[UploadAnswer, AuditRow]:
    # The audit row of each step, exactly as docs/reference/kamkmserve.md §5.1 lists it (which of ip/user_agent/metadata
    # is passed).
    raw_ip, agent = request.forwarded_for, request.user_agent
    if "multipart/form-data" not in request.content_type.lower():
        log.log("warn", "Upload: wrong content-type", {"duration": duration_ms, "contentType": request.content_type})
        collector.record_metric("upload_request_invalid", 1)
        return UploadAnswer(400, {"error": "Expected multipart/form-data"}), AuditRow(
            "upload.invalid_content_type", ip=raw_ip or request.real_ip, user_agent=agent,
            metadata={"contentType": request.content_type})
    if request.file is None:
        log.log("warn", "Upload: missing file", {"duration": duration_ms})
        collector.record_metric("upload_request_missing_file", 1)
        return UploadAnswer(400, {"error": "Missing file field"}), AuditRow("upload.missing_file")
    size = len(request.file.data)
    if size > MAX_BYTES:
        log.log("warn", "Upload: file too large", {"duration": duration_ms, "size": size, "max": MAX_BYTES})
        collector.record_metric("upload_rejected_size", 1)
        return UploadAnswer(400, {"error": f"File too large. Max {MAX_BYTES} bytes"}), AuditRow(
            "upload.too_large", metadata={"size": size, "max": MAX_BYTES})
    error, mime, ext = validate(request.file, rules=rules)
    if error is not None:
        log.log("warn", "Upload: validation failed", {"duration": duration_ms, "error": error})
        collector.record_metric("upload_rejected_validation", 1)
        return UploadAnswer(400, {"error": error}, quota_headers), AuditRow(
            "upload.validation_failed", ip=raw_ip, user_agent=agent, metadata={"error": error})
    log.log("info", "Upload: validated", {"duration": duration_ms, "mime": mime, "ext": ext, "bytes": size})
    collector.record_metric("upload_accepted", 1)
    return UploadAnswer(200, {"ok": True, "mime": mime, "ext": ext, "bytes": size}, quota_headers), AuditRow(
        "upload.validated", allowed=True, ip=raw_ip, user_agent=agent,
        metadata={"mime": mime, "ext": ext, "bytes": size})


def _audit(log: AppLog, sink: AuditWriter | None, failure: str | None, row: AuditRow) -> None:
    """``writeAuditLog``: ``Security event: Audit: <event>`` after a successful insert, else the failure line."""
    def done(error: str | None) -> None:
        if error is None:
            log.security(f"Audit: {row.event}", {"action": row.action, "resource": row.resource,
                                                 "allowed": row.allowed})
        else:
            log.log("error", "Failed to write audit log", {"error": error})

    if failure is not None or sink is None:
        done(failure or "audit sink missing")
        return
    sink(row, done)


def parse_multipart_file(content_type: str, body: bytes) -> UploadFile | None:
    """The ``file`` field of a multipart/form-data body, if it is a file part."""
    message = BytesParser(policy=HTTP).parsebytes(
        b"Content-Type: " + content_type.encode("latin-1") + b"\r\n\r\n" + body
    )
    if not message.is_multipart():
        return None
    for part in message.iter_parts():
        if part.get_param("name", header="content-disposition") != "file":
            continue
        filename = part.get_filename()
        if filename is None:
            return None  # a plain form value named "file" is not a File in formData()
        payload = part.get_payload(decode=True)
        data = payload if isinstance(payload, bytes) else b""
        return UploadFile(filename=filename, client_type=part.get_content_type(), data=data)
    return None
