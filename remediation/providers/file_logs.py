"""Logs of a self-hosted kamkmserve: the files its ``next start >app.log 2>app.err`` writes.

The app prints one JSON object per line (docs/reference/kamkmserve.md §3.1): ``info`` on stdout, ``warn``/``error``
on stderr, with non-JSON start-up lines (the Next.js banner, a dotenv tip) on stdout. Both files are read and
merged by the lines' own timestamps; anything that is not one of the app's JSON lines is skipped by the one parser
every log source shares (:func:`app_line`, over :func:`remediation.providers.logparse.parse_line`).

How rotation is handled: :class:`FileLogs` keeps **no offsets between calls**. Every call opens each file, takes
its size at that moment, and reads it *backwards* from that end until it reaches a line older than the window
(or has the newest ``limit`` lines). When the window starts before the first line of ``path``, the rotated-away
sibling ``path.1`` is read the same way for the part of the window it covers. So:

* a file replaced by rotation (logrotate ``create``: rename to ``path.1``, new inode at ``path``) is read from
  the start of the new file, and its predecessor's lines come from ``path.1``: nothing lost, nothing twice;
* the same rename while the app keeps its descriptor (a plain ``>app.log`` redirect is never reopened): its lines
  keep landing in ``path.1``, the new ``path`` stays empty, and the window is read from ``path.1``;
* a file truncated in place (logrotate ``copytruncate``) is read as it now is, from its start; the copy in
  ``path.1`` supplies what came before. Under a ``>`` redirect the app then writes on at its old offset, leaving a
  run of NUL bytes before its next line; those are skipped. A truncation with no copy (``: >app.log``) erases
  the lines before it from the disk and no reader can return them; nothing written after it is missed, since no
  stale offset is kept;
* a rename that happens while a call opens the files is detected (``path`` no longer the inode just opened, or
  ``path.1`` the same inode as ``path``) and the snapshot is taken again;
* older generations (``path.2``, compressed ones) are not read: a window reaching past ``path.1`` is cut there.

Lines without a parsable timestamp cannot be placed in a window and are dropped (the app always writes one).
A missing or unreadable ``path`` is a :class:`PlatformError` naming it, so the runbooks report the log evidence
as unavailable rather than as empty and healthy; a missing ``path.1`` only means there was no rotation.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import BinaryIO

from remediation.providers.capabilities import Clock, Logs
from remediation.providers.clock import RealClock
from remediation.providers.logparse import parse_line
from remediation.providers.platform import LogLine, PlatformError
from remediation.settings import Settings

ROTATED_SUFFIX = ".1"
_BLOCK = 64 * 1024
_OPEN_ATTEMPTS = 4
_ROTATION_PAUSE_S = 0.05  # logrotate renames, then creates: the live file is briefly absent


class FileLogs:
    """:class:`~remediation.providers.capabilities.Logs` over the app's log files (stdout and stderr, any number).

    ``default_window_s`` bounds a call without ``since`` (a whole file is never scanned by default);
    ``max_bytes`` bounds how much of one file a call reads from its end; ``skew_s`` tolerates lines slightly out
    of order (several workers writing one file) before the backwards read stops.
    """

    def __init__(self, paths: Sequence[Path], *, clock: Clock | None = None, default_window_s: float = 3600.0,
                 max_bytes: int = 64 * 1024 * 1024, skew_s: float = 5.0) -> None:
        if not paths:
            raise ValueError("FileLogs needs at least one log file")
        self.paths = [Path(p) for p in paths]
        self.clock: Clock = clock or RealClock()
        self.default_window_s = default_window_s
        self.max_bytes = max_bytes
        self.skew = timedelta(seconds=skew_s)

    async def lines(self, since: datetime | None = None, limit: int = 500) -> list[LogLine]:
        if limit <= 0:
            return []
        start = _aware(since) if since is not None else self.clock.now() - timedelta(seconds=self.default_window_s)
        return await asyncio.to_thread(self._read, start, limit)

    def _read(self, since: datetime, limit: int) -> list[LogLine]:
        merged: list[LogLine] = []
        for path in self.paths:
            merged.extend(self._read_path(path, since, limit))
        merged.sort(key=lambda line: line.timestamp or since)  # stable: equal instants keep file order
        return merged[-limit:]

    def _read_path(self, path: Path, since: datetime, limit: int) -> list[LogLine]:
        live, rotated, rotated_error = _snapshot(path)
        try:
            newest, covered = self._window(live, since, limit)
            if covered or len(newest) >= limit:
                return newest
            if rotated is None:
                if rotated_error is not None:
                    raise PlatformError(f"rotated log file {_sibling(path)} is unreadable ({rotated_error}) and the "
                                        f"window reaches into it")
                return newest
            older, _ = self._window(rotated, since, limit - len(newest))
            return older + newest
        finally:
            live.close()
            if rotated is not None:
                rotated.close()

    def _window(self, handle: BinaryIO, since: datetime, limit: int) -> tuple[list[LogLine], bool]:
        """The newest ``limit`` lines at or after ``since``, oldest first, and whether the read got past the
        window's start (so an older file has nothing more to give)."""
        found: list[LogLine] = []
        end = os.fstat(handle.fileno()).st_size
        for raw in _backwards(handle, end, self.max_bytes):
            # NULs: a copytruncate under a `>` redirect makes the app write on at its old offset, over a hole.
            line = app_line(raw.lstrip(b"\0").decode("utf-8", "replace"))
            if line is None or line.timestamp is None:
                continue
            if line.timestamp < since:
                if line.timestamp < since - self.skew:
                    found.reverse()
                    return found, True
                continue
            found.append(line)
            if len(found) >= limit:
                break
        found.reverse()
        return found, len(found) >= limit


def app_line(text: str) -> LogLine | None:
    """One printed line of the app as a LogLine (None for anything else), with its timestamp always aware: every
    reader of the app's own output (files, drains) places lines in a window with it."""
    line = parse_line(text)
    if line is None or line.timestamp is None or line.timestamp.tzinfo is not None:
        return line
    return line.model_copy(update={"timestamp": line.timestamp.replace(tzinfo=UTC)})


def build_file_logs(settings: Settings, clock: Clock | None = None) -> Logs:
    """The ``logs = "file"`` capability from ``REMEDIATE_LOG_FILES``."""
    if not settings.log_files:
        raise PlatformError("logs = file needs the app's log files: set REMEDIATE_LOG_FILES=/var/log/kamkmserve/"
                            "app.log,/var/log/kamkmserve/app.err (its stdout and stderr)")
    return FileLogs(settings.log_files, clock=clock)


def _snapshot(path: Path) -> tuple[BinaryIO, BinaryIO | None, str | None]:
    """Open ``path`` and ``path.1`` as one consistent pair: (live, rotated or None, why rotated is unreadable)."""
    for attempt in range(_OPEN_ATTEMPTS):
        try:
            live = path.open("rb")
        except FileNotFoundError:
            if attempt + 1 < _OPEN_ATTEMPTS and _sibling(path).exists():
                time.sleep(_ROTATION_PAUSE_S)
                continue
            raise PlatformError(f"log file {path} does not exist") from None
        except OSError as exc:
            raise PlatformError(f"log file {path} is unreadable: {exc.strerror or exc}") from None
        rotated: BinaryIO | None = None
        rotated_error: str | None = None
        try:
            rotated = _sibling(path).open("rb")
        except FileNotFoundError:
            pass
        except OSError as exc:
            rotated_error = exc.strerror or str(exc)
        if _consistent(path, live, rotated):
            return live, rotated, rotated_error
        live.close()
        if rotated is not None:
            rotated.close()
        time.sleep(_ROTATION_PAUSE_S)
    raise PlatformError(f"log file {path} kept being rotated while it was opened ({_OPEN_ATTEMPTS} attempts)")


def _consistent(path: Path, live: BinaryIO, rotated: BinaryIO | None) -> bool:
    """False when a rotation ran between the two opens: ``path`` is no longer the file opened as live, or the
    file opened as ``path.1`` is that same file (it was renamed under us)."""
    opened = _identity(os.fstat(live.fileno()))
    try:
        current = _identity(path.stat())
    except OSError:
        return False
    return current == opened and (rotated is None or _identity(os.fstat(rotated.fileno())) != opened)


def _identity(stat: os.stat_result) -> tuple[int, int]:
    return stat.st_dev, stat.st_ino


def _sibling(path: Path) -> Path:
    return path.with_name(path.name + ROTATED_SUFFIX)


def _backwards(handle: BinaryIO, end: int, max_bytes: int) -> Iterator[bytes]:
    """The lines of ``handle[:end]``, last first. The first one yielded may be a line still being written (no
    newline yet; it will not parse). Reading stops ``max_bytes`` before ``end``, dropping the line cut there."""
    floor = max(0, end - max_bytes)
    position = end
    head = b""
    while position > floor:
        size = min(_BLOCK, position - floor)
        position -= size
        handle.seek(position)
        parts = (handle.read(size) + head).split(b"\n")
        head = parts[0]  # its beginning may lie in the block before
        yield from reversed(parts[1:])
    if floor == 0 and head:
        yield head


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)
