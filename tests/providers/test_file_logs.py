"""FileLogs: the app's stdout/stderr files as the runbooks' log source (captured real output, generated bursts,
rotation, truncation, and failures that must read as *unavailable*)."""

from __future__ import annotations

import asyncio
import os
import shutil
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from remediation.models import FindingStatus
from remediation.providers.clock import VirtualClock
from remediation.providers.file_logs import FileLogs, build_file_logs
from remediation.providers.platform import LogLine, PlatformError
from remediation.runbooks.suspicious_upload import log_finding, parse_upload_logs, policy_finding
from remediation.settings import Settings
from tasks.database_errors.identify import AUDIT_TABLE, parse_db_logs
from tasks.database_errors.identify import log_finding as db_finding
from tests.helpers.applog import CAPTURED, DB_DOWN, app_line, audit_failed, burst, captured, captured_json, numbered

RUN = datetime(2026, 11, 26, 15, 0, tzinfo=UTC)  # before the captured runs (15:27-15:28)
T0 = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)


def write(path: Path, lines: list[str], mode: str = "a") -> None:
    with path.open(mode, encoding="utf-8") as handle:
        handle.writelines(line + "\n" for line in lines)


def seqs(lines: list[LogLine]) -> list[int]:
    return [(line.context or {})["seq"] for line in lines]


@pytest.fixture
def captured_files(tmp_path: Path) -> list[Path]:
    """The four captured streams, as a self-hosted app would have left them on disk."""
    paths = []
    for name in CAPTURED:
        shutil.copyfile(Path(__file__).resolve().parents[1] / "fixtures" / "kamkmserve" / name, tmp_path / name)
        paths.append(tmp_path / name)
    return paths


def test_the_generator_prints_exactly_what_the_app_printed() -> None:
    """Every captured JSON line without request fields (only middleware events have them) re-printed by
    tests.helpers.applog.app_line is byte-identical: the generated bursts below are in the app's real format."""
    compared = 0
    for name in CAPTURED:
        for raw, entry in zip((x for x in captured(name).decode().splitlines() if x.startswith("{")),
                              captured_json(name), strict=True):
            if "path" in entry:
                continue
            at = datetime.fromisoformat(entry["timestamp"].replace("Z", "+00:00"))
            assert app_line(at, entry["level"], entry["message"], entry.get("context")) == raw
            compared += 1
    assert compared == 20


async def test_captured_output_yields_every_json_line_in_time_order_and_skips_startup_noise(
        captured_files: list[Path]) -> None:
    lines = await FileLogs(captured_files).lines(since=RUN, limit=1000)
    expected = sorted((e for name in CAPTURED for e in captured_json(name)), key=lambda e: e["timestamp"])
    assert [(line.message, line.level) for line in lines] == [(e["message"], e["level"]) for e in expected]
    assert all(line.raw.startswith("{") for line in lines)  # the Next.js banner and dotenv tip are gone
    assert lines[-1].message == "Received SIGTERM, initiating graceful shutdown..."
    admin = [line.request for line in lines if line.request]
    assert [r.get("requestId") for r in admin] == [None, "probe-r6"] and admin[1]["ip"] == "198.51.100.9, 10.0.0.2"


async def test_captured_output_tells_malware_from_extension_refusals_and_counts_database_failures(
        captured_files: list[Path]) -> None:
    lines = await FileLogs(captured_files).lines(since=RUN, limit=1000)
    uploads = parse_upload_logs(lines)
    assert (uploads.malware, uploads.reasons) == (1, {"simulated-detection": 1})
    assert uploads.policy == 4 and uploads.refused_extensions == {".exe": 2, ".txt": 1}
    assert uploads.policy_reasons["MIME not allowed: text/plain"] == 1
    db = parse_db_logs(lines)
    failures = sum(1 for line in lines if line.message == "Failed to write audit log")
    assert failures == 9 and db.failures == 9
    group = next(g for g in db.groups if g.table == AUDIT_TABLE)
    assert (group.operation, group.failed, group.last_error) == ("INSERT", 9, DB_DOWN)
    assert db_finding(db, min_failures=3, min_slow=5, window_s=600).status is FindingStatus.BREACH


@pytest.mark.parametrize(("malware", "exe"), [(10, 0), (0, 10), (10, 10)])
async def test_a_burst_of_ten_exe_refusals_is_not_a_malware_burst(tmp_path: Path, malware: int, exe: int) -> None:
    """Ten malware detections breach upload_log_malware; ten .exe refusals do not, and upload_log_policy names
    the extension; both together count each kind only once."""
    err = tmp_path / "app.err"
    write(err, [line for _, line in burst(T0, malware=malware, exe=exe)])
    write(tmp_path / "app.log", ["   ▲ Next.js 15.5.0", " ✓ Ready in 640ms"])
    reading = parse_upload_logs(await FileLogs([tmp_path / "app.log", err]).lines(since=T0 - timedelta(seconds=1)))
    malware_f, policy_f = log_finding(reading, 3, 600), policy_finding(reading, 600)
    assert malware_f.observed == malware
    assert malware_f.status is (FindingStatus.BREACH if malware else FindingStatus.OK)
    assert policy_f.status is FindingStatus.INFO and policy_f.observed == exe
    assert policy_f.evidence["extensions"] == ({".exe": exe} if exe else {})
    assert (".exe" in policy_f.detail) is bool(exe)
    assert parse_db_logs(await FileLogs([err]).lines(since=T0)).failures == malware + exe


async def test_an_unreachable_database_counts_as_failures_but_the_never_migrated_audit_table_does_not(
        tmp_path: Path) -> None:
    """``Error connecting to database`` (in the audit failure or in a message of its own) is a database failure; the
    audit table that no migration creates (docs/reference/kamkmserve.md §5.1) fails every write on a healthy
    database and is reported apart; a successful audit write is a database operation that worked."""
    err = tmp_path / "app.err"
    missing = 'relation "kamkmserve_audit_log" does not exist'
    write(err, [audit_failed(T0), audit_failed(T0, missing), audit_failed(T0, missing),
                app_line(T0, "error", "Error connecting to database", {"error": "TypeError: fetch failed"}),
                app_line(T0, "warn", "Security event: Audit: upload.validated", {"action": "upload", "allowed": True})])
    stats = parse_db_logs(await FileLogs([err]).lines(since=T0))
    assert (stats.failures, stats.audit_table_missing, stats.operations) == (2, 2, 3)
    finding = db_finding(stats, min_failures=2, min_slow=5, window_s=600)
    assert finding.status is FindingStatus.BREACH
    assert "does not exist (a missing migration, not counted)" in finding.detail

    write(err, [audit_failed(T0, missing)] * 5 + [app_line(T0, "warn", "Security event: Audit: upload.validated")], "w")
    quiet = db_finding(parse_db_logs(await FileLogs([err]).lines(since=T0)), min_failures=2, min_slow=5, window_s=600)
    assert quiet.status is FindingStatus.OK and quiet.observed == 0


async def test_since_excludes_older_lines_and_limit_keeps_the_newest(tmp_path: Path) -> None:
    log, err = tmp_path / "app.log", tmp_path / "app.err"
    write(log, numbered(T0, 50))  # seq 0..49, one ms apart
    write(err, numbered(T0, 50, first=50))  # seq 50..99 on the other stream
    logs = FileLogs([log, err], skew_s=0)
    assert seqs(await logs.lines(since=T0 + timedelta(milliseconds=40), limit=1000)) == list(range(40, 100))
    assert seqs(await logs.lines(since=T0, limit=15)) == list(range(85, 100))
    assert await logs.lines(since=T0 + timedelta(seconds=5)) == []


async def test_without_since_the_default_window_is_read(tmp_path: Path) -> None:
    log = tmp_path / "app.log"
    write(log, [app_line(T0 - timedelta(hours=2), "info", "old"), app_line(T0, "info", "recent")])
    lines = await FileLogs([log], clock=VirtualClock(T0 + timedelta(minutes=30)), default_window_s=3600).lines()
    assert [line.message for line in lines] == ["recent"]


async def test_rename_rotation_loses_and_repeats_nothing(tmp_path: Path) -> None:
    """logrotate ``create``: app.log becomes app.log.1 and a new app.log (new inode) starts empty."""
    log = tmp_path / "app.log"
    logs = FileLogs([log])
    write(log, numbered(T0, 30))
    assert seqs(await logs.lines(since=T0)) == list(range(30))
    old_inode = log.stat().st_ino
    log.rename(tmp_path / "app.log.1")
    write(log, numbered(T0, 20, first=30), mode="w")
    assert log.stat().st_ino != old_inode
    assert seqs(await logs.lines(since=T0)) == list(range(50))
    assert seqs(await logs.lines(since=T0 + timedelta(milliseconds=25))) == list(range(25, 50))  # .1's share only
    assert seqs(await logs.lines(since=T0 + timedelta(milliseconds=35))) == list(range(35, 50))  # .1 not needed


async def test_rename_while_the_app_keeps_writing_to_its_old_descriptor(tmp_path: Path) -> None:
    """A plain ``>app.log`` redirect never reopens: after the rename its lines land in app.log.1."""
    log = tmp_path / "app.log"
    with log.open("a", encoding="utf-8") as app:
        app.writelines(line + "\n" for line in numbered(T0, 10))
        app.flush()
        log.rename(tmp_path / "app.log.1")
        log.touch()
        app.writelines(line + "\n" for line in numbered(T0, 10, first=10))
    assert seqs(await FileLogs([log]).lines(since=T0)) == list(range(20))


async def test_copytruncate_loses_and_repeats_nothing_and_skips_the_nul_hole(tmp_path: Path) -> None:
    """logrotate ``copytruncate``: the content is copied to app.log.1, app.log is truncated in place (same inode)
    and is read from its start; an app writing on at its old offset leaves NULs before its next line."""
    log = tmp_path / "app.log"
    logs = FileLogs([log])
    write(log, numbered(T0, 30))
    size = log.stat().st_size
    assert seqs(await logs.lines(since=T0)) == list(range(30))
    shutil.copyfile(log, tmp_path / "app.log.1")
    inode = log.stat().st_ino
    os.truncate(log, 0)
    with log.open("r+b") as app:  # the app's descriptor still points past the end of what was truncated
        app.seek(size)
        app.write("".join(line + "\n" for line in numbered(T0, 5, first=30)).encode())
    assert log.stat().st_ino == inode
    assert seqs(await logs.lines(since=T0)) == list(range(35))


async def test_a_truncated_file_is_read_from_its_start_again(tmp_path: Path) -> None:
    """Truncated with no copy, then written again with less than before: every new line is read, the first one
    included (a reader holding the old offset would skip them)."""
    log = tmp_path / "app.log"
    logs = FileLogs([log])
    write(log, numbered(T0, 100))
    assert len(await logs.lines(since=T0)) == 100
    write(log, numbered(T0 + timedelta(seconds=1), 3, first=100), mode="w")
    assert seqs(await logs.lines(since=T0)) == [100, 101, 102]


async def test_a_line_still_being_written_is_left_for_the_next_read(tmp_path: Path) -> None:
    log = tmp_path / "app.log"
    first, second = numbered(T0, 2)
    log.write_text(first + "\n" + second[:25], encoding="utf-8")
    assert seqs(await FileLogs([log]).lines(since=T0)) == [0]
    log.write_text(first + "\n" + second + "\n", encoding="utf-8")
    assert seqs(await FileLogs([log]).lines(since=T0)) == [0, 1]


def test_reads_racing_a_writer_that_rotates_never_repeat_or_skip_a_line(tmp_path: Path) -> None:
    """A writer appends 3,000 numbered lines and renames the file once half way; every read taken meanwhile is a
    gap-free run with no line twice, and the last one has them all."""
    log = tmp_path / "app.log"
    log.touch()
    lines = numbered(T0, 3000)
    done = threading.Event()

    def writer() -> None:
        for i, line in enumerate(lines):
            if i == 1500:
                log.rename(tmp_path / "app.log.1")
            with log.open("a", encoding="utf-8") as handle:
                handle.write(line + "\n")
        done.set()

    logs = FileLogs([log])
    thread = threading.Thread(target=writer)
    thread.start()
    reads = 0
    while not done.is_set() or reads == 0:
        got = seqs(asyncio.run(logs.lines(since=T0, limit=10_000)))
        if got:
            assert got == list(range(got[0], got[0] + len(got))), f"read {reads}: {len(got)} lines, not a run"
        reads += 1
    thread.join()
    assert seqs(asyncio.run(logs.lines(since=T0, limit=10_000))) == list(range(3000))


async def test_a_rotation_between_opening_the_file_and_its_sibling_is_caught_and_the_snapshot_retaken(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The rename lands right after app.log is opened, so app.log.1 *is* the file just opened: read as it is,
    every line would come twice. The reader notices and reads the new pair."""
    log = tmp_path / "app.log"
    write(log, numbered(T0, 10))
    original = Path.open
    rotations: list[int] = []

    def open_then_rotate(self: Path, *args: object, **kwargs: object) -> object:
        handle = original(self, *args, **kwargs)  # type: ignore[call-overload]
        if self == log and not rotations:
            rotations.append(log.stat().st_ino)
            log.rename(tmp_path / "app.log.1")
            write(log, numbered(T0, 5, first=10), mode="w")
        return handle

    monkeypatch.setattr(Path, "open", open_then_rotate)
    assert seqs(await FileLogs([log]).lines(since=T0)) == list(range(15))
    assert rotations and (tmp_path / "app.log.1").stat().st_ino == rotations[0]


async def test_a_missing_or_unreadable_file_is_an_error_naming_it(tmp_path: Path) -> None:
    """Never an empty list: the runbooks must report the log evidence as unavailable, not as quiet."""
    present = tmp_path / "app.log"
    write(present, numbered(T0, 1))
    with pytest.raises(PlatformError, match=r"app\.err does not exist"):
        await FileLogs([present, tmp_path / "app.err"]).lines(since=T0)
    (tmp_path / "logs-dir").mkdir()
    with pytest.raises(PlatformError, match=r"logs-dir is unreadable"):
        await FileLogs([tmp_path / "logs-dir"]).lines(since=T0)


def test_settings_split_the_file_list_and_the_builder_refuses_an_empty_one(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("REMEDIATE_CONFIG", raising=False)
    monkeypatch.setenv("REMEDIATE_LOG_FILES", "/var/log/app.log, /var/log/app.err")
    settings = Settings()
    assert settings.log_files == [Path("/var/log/app.log"), Path("/var/log/app.err")]
    built = build_file_logs(settings)
    assert isinstance(built, FileLogs) and built.paths == settings.log_files
    monkeypatch.setenv("REMEDIATE_LOG_FILES", "")
    with pytest.raises(PlatformError, match="REMEDIATE_LOG_FILES"):
        build_file_logs(Settings())
