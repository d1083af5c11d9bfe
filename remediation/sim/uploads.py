"""``POST /api/uploads`` (reference §7): quota, content-type, file field, validation order, metrics and logs."""

from __future__ import annotations

import posixpath
from dataclasses import dataclass, field
from email.parser import BytesParser
from email.policy import HTTP

from remediation.sim.applog import AppLog
from remediation.sim.collector import MetricsCollector
from remediation.sim.jsfmt import js_iso

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


def validate(file: UploadFile, av_mode: str = "off") -> tuple[str | None, str, str]:
    """(error or None, mime, ext) in validateUpload's check order: size, extension, MIME, antivirus."""
    if len(file.data) > MAX_BYTES:
        return f"File too large. Max {MAX_BYTES} bytes", "", ""
    ext = posixpath.splitext(file.filename or "")[1].lower()
    if ext not in ALLOWED_EXT:
        return f"File extension not allowed: {ext or '(none)'}", "", ext
    mime = detect_mime(file.data) or (file.client_type or "").lower()
    if mime not in ALLOWED_MIME:
        return f"MIME not allowed: {mime or 'unknown'}", mime, ext
    if av_mode == "reject":
        return "Malware scan failed: simulated-detection", mime, ext
    return None, mime, ext


def handle_upload(request: UploadRequest, *, quota: UploadQuota, collector: MetricsCollector, log: AppLog,
                  now_ms: int, duration_ms: int, audit_error: str, av_mode: str = "off") -> UploadAnswer:
    # The route's own IP parsing: an absent X-Forwarded-For gives "" (not "unknown"), as in the code.
    ip = (request.forwarded_for or "").split(",")[0].strip()
    count = quota.count(ip, now_ms)
    # NextResponse lower-cases header names, so these print as x-upload-* whatever the code wrote.
    quota_headers: tuple[tuple[str, str], ...] = ()
    if count is not None:
        if count > PER_HOUR:
            _audit_failed(log, audit_error)
            return UploadAnswer(429, {"error": "Upload quota exceeded"},
                                (("x-upload-limit", str(PER_HOUR)), ("x-upload-remaining", "0")))
        quota_headers = (("x-upload-limit", str(PER_HOUR)), ("x-upload-remaining", str(max(PER_HOUR - count, 0))))

    answer = _validated(request, collector, log, duration_ms, av_mode, quota_headers)
    _audit_failed(log, audit_error)  # the audit table has no migration, so every write fails
    return answer


def _validated(request: UploadRequest, collector: MetricsCollector, log: AppLog, duration_ms: int,
               av_mode: str, quota_headers: tuple[tuple[str, str], ...]) -> UploadAnswer:
    if "multipart/form-data" not in request.content_type.lower():
        log.log("warn", "Upload: wrong content-type", {"duration": duration_ms, "contentType": request.content_type})
        collector.record_metric("upload_request_invalid", 1)
        return UploadAnswer(400, {"error": "Expected multipart/form-data"})
    if request.file is None:
        log.log("warn", "Upload: missing file", {"duration": duration_ms})
        collector.record_metric("upload_request_missing_file", 1)
        return UploadAnswer(400, {"error": "Missing file field"})
    size = len(request.file.data)
    if size > MAX_BYTES:
        log.log("warn", "Upload: file too large", {"duration": duration_ms, "size": size, "max": MAX_BYTES})
        collector.record_metric("upload_rejected_size", 1)
        return UploadAnswer(400, {"error": f"File too large. Max {MAX_BYTES} bytes"})
    error, mime, ext = validate(request.file, av_mode)
    if error is not None:
        log.log("warn", "Upload: validation failed", {"duration": duration_ms, "error": error})
        collector.record_metric("upload_rejected_validation", 1)
        return UploadAnswer(400, {"error": error}, quota_headers)
    log.log("info", "Upload: validated", {"duration": duration_ms, "mime": mime, "ext": ext, "bytes": size})
    collector.record_metric("upload_accepted", 1)
    return UploadAnswer(200, {"ok": True, "mime": mime, "ext": ext, "bytes": size}, quota_headers)


def _audit_failed(log: AppLog, audit_error: str) -> None:
    log.log("error", "Failed to write audit log", {"error": audit_error})


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
