"""Identify steps of the upload runbook: read the audit table, the upload log lines and the counters; the decisions
are pure, in remediation.runbooks.suspicious_upload."""

from __future__ import annotations

from datetime import datetime

from remediation.providers.uploadstats import UploadCounts
from remediation.runbooks.suspicious_upload import AuditReading, UploadLogReading, group_actors, parse_upload_logs
from remediation.runtime import Providers
from tasks import step


@step(name="identify: upload audit rows")
async def read_audit(providers: Providers, since: datetime) -> AuditReading:
    settings = providers.settings
    if providers.audit is None:
        return AuditReading(available=False, reason="no audit reader on this platform")
    report = await providers.audit.events(since, "upload.")
    return group_actors(report, settings.trusted_proxy_cidrs, settings.never_block_cidrs)


@step(name="identify: upload log lines")
async def read_upload_logs(providers: Providers, since: datetime) -> UploadLogReading:
    try:
        lines = await providers.logs.lines(since=since, limit=5000)
    except Exception as exc:
        return UploadLogReading(available=False, reason=f"logs unreadable: {exc}")
    return parse_upload_logs(lines)


@step(name="identify: upload counters")
async def read_upload_counts(providers: Providers) -> UploadCounts:
    return await providers.metrics.upload_counts()
