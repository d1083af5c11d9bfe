"""The upload runbook's pure decisions: counting the upload samples, the verdict, whom to block, what to drop from
the allowlist, which benign file to probe with."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from remediation.models import Finding, FindingStatus
from remediation.providers.quarantine import QuarantinedSample, QuarantineReport
from remediation.providers.security import AuditEvent, AuditReport, UploadAllowlist
from remediation.providers.uploadstats import parse_upload_counts
from remediation.runbooks.suspicious_upload import allowlist_plan, block_plans, group_actors, verdict
from tasks.suspicious_upload.verify import probe_file

NEVER_BLOCK = ("10.0.0.0/8", "127.0.0.0/8", "192.168.0.0/16")
DEFAULTS = UploadAllowlist(extensions=(".png", ".jpg", ".jpeg", ".webp", ".pdf"),
                           mime_types=("image/png", "image/jpeg", "image/webp", "application/pdf"))
PAGE = ("# HELP process_uptime_seconds Process uptime in seconds\n# TYPE process_uptime_seconds gauge\n"
        "process_uptime_seconds 3712.48\n# HELP upload_rejected_validation Auto-exported metric\n"
        "# TYPE upload_rejected_validation gauge\nupload_rejected_validation 1\nupload_rejected_validation 1\n"
        "# HELP upload_accepted Auto-exported metric\n# TYPE upload_accepted gauge\nupload_accepted 1\n"
        "# HELP http_requests_total Total HTTP requests observed\n# TYPE http_requests_total counter\n")


def rows(ip: str, n: int, error: str = "Malware scan failed: Win.Test.EICAR_HDB-1", user: str | None = None
         ) -> list[AuditEvent]:
    return [AuditEvent(id=f"{ip}-{i}", event="upload.validation_failed", action="upload", resource="/api/uploads",
                       allowed=False, ip=f"{ip}, 10.0.0.1", metadata=f'{{"error":"{error}"}}', actor_user_id=user,
                       created_at=datetime(2026, 1, 1, 12, 0, i, tzinfo=UTC)) for i in range(n)]


def sample(ext: str, mime: str) -> QuarantinedSample:
    return QuarantinedSample(at=datetime.now(UTC), sha256="0" * 64, size=68, filename=f"x{ext}", mime=mime, ext=ext,
                             signature="Win.Test.EICAR_HDB-1")


def test_upload_samples_are_counted_one_line_per_event() -> None:
    counts = parse_upload_counts(PAGE)
    assert counts.available and (counts.rejected, counts.accepted, counts.total) == (2, 1, 3)


def test_a_page_without_upload_samples_is_unknown_and_a_foreign_page_is_refused() -> None:
    quiet = parse_upload_counts(PAGE.split("# HELP upload_rejected")[0])
    assert not quiet.available and "no upload sample" in quiet.reason
    with pytest.raises(ValueError, match="not kamkmserve"):
        parse_upload_counts("upload_accepted 1\n")


def test_each_offender_gets_a_ttl_block_and_a_user_block_when_rows_name_one() -> None:
    reading = group_actors(AuditReport(available=True, events=(*rows("203.0.113.66", 4, user="usr_1"),
                                                               *rows("198.51.100.9", 2))), NEVER_BLOCK, NEVER_BLOCK)
    choice = block_plans("kamkmserve", reading, min_detections=3, ttl_s=900, max_blocks=5)
    assert [(p.actor_kind, p.value, p.ttl_s, p.evidence_count) for p in choice.plans] == [
        ("ip", "203.0.113.66", 900, 4), ("user", "usr_1", 900, 4)]  # 198.51.100.9: two, under the threshold


def test_more_offenders_than_the_cap_is_not_one_attack_and_blocks_nobody() -> None:
    events = [e for n in range(4) for e in rows(f"203.0.113.{n + 10}", 3)]
    reading = group_actors(AuditReport(available=True, events=tuple(events)), NEVER_BLOCK, NEVER_BLOCK)
    choice = block_plans("kamkmserve", reading, min_detections=3, ttl_s=900, max_blocks=3)
    assert choice.plans == () and choice.too_many and "not blocking anyone" in choice.notes[-1]


def test_the_allowlist_loses_exactly_the_types_the_samples_came_in_as() -> None:
    report = QuarantineReport(available=True, samples=(sample(".pdf", "application/pdf"),) * 3)
    plan, _ = allowlist_plan("kamkmserve", DEFAULTS, report)
    assert plan is not None
    assert plan.extensions == (".png", ".jpg", ".jpeg", ".webp")
    assert plan.mime_types == ("image/png", "image/jpeg", "image/webp")
    undo = plan.undo()
    assert undo is not None and undo.extensions == DEFAULTS.extensions  # the previous lists are the undo


@pytest.mark.parametrize(("report", "why"), [
    (QuarantineReport(available=False, reason="quarantine unreadable: x"), "quarantine unreadable"),
    (QuarantineReport(available=True), "kept no sample"),
    (QuarantineReport(available=True, samples=(sample(".exe", "application/x-msdownload"),)), "not on the allowlist"),
])  # fmt: skip
def test_without_a_droppable_type_the_allowlist_is_left_alone(report: QuarantineReport, why: str) -> None:
    plan, reason = allowlist_plan("kamkmserve", DEFAULTS, report)
    assert plan is None and why in reason


def f(check: str, status: FindingStatus, observed: float | None = None) -> Finding:
    return Finding(check=check, status=status, observed=observed, threshold=3, detail=check)


def test_a_metric_burst_is_a_breach_only_when_nothing_readable_says_why() -> None:
    unknown_audit, unknown_logs = f("upload_audit", FindingStatus.UNKNOWN), f("upload_log_malware",
                                                                             FindingStatus.UNKNOWN)
    burst = f("upload_rejected_validation", FindingStatus.BREACH, 9)
    assert verdict(unknown_audit, unknown_logs, burst).status is FindingStatus.BREACH
    assert verdict(unknown_audit, f("upload_log_malware", FindingStatus.OK, 0), burst).status is FindingStatus.OK
    assert verdict(unknown_audit, unknown_logs, f("m", FindingStatus.UNKNOWN)).status is FindingStatus.UNKNOWN
    assert verdict(unknown_audit, unknown_logs, f("m", FindingStatus.OK, 0)).status is FindingStatus.OK  # no rejection
    assert verdict(unknown_audit, unknown_logs, f("m", FindingStatus.OK, 2)).status is FindingStatus.UNKNOWN


def test_the_probe_uses_a_type_the_allowlist_still_accepts() -> None:
    assert probe_file(None) is not None and probe_file(None).ext == ".png"  # type: ignore[union-attr]
    no_png = UploadAllowlist(extensions=(".pdf",), mime_types=("application/pdf",))
    assert probe_file(no_png).mime == "application/pdf"  # type: ignore[union-attr]
    assert probe_file(UploadAllowlist(extensions=(".jpg",), mime_types=("image/jpeg",))) is None
