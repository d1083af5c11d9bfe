"""The app's console output: src/lib/logger.ts lines plus the unstructured text Next.js and handlers print.

Everything printed is kept in a ring with the stream it went to, so the control plane can serve it the way a
platform's log drain would; with ``echo`` it is also written to this process's stdout/stderr.
"""

from __future__ import annotations

import sys
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

from kamkmserve_sim.clock import Clock
from kamkmserve_sim.jsfmt import js_iso, js_json

Stream = Literal["stdout", "stderr"]
Level = Literal["debug", "info", "warn", "error", "fatal"]

_RANK: dict[str, int] = {"debug": 0, "info": 1, "warn": 2, "error": 3, "fatal": 4}
# console.debug/info go to stdout in Node, console.warn/error to stderr; fatal uses console.error.
_STREAM: dict[str, Stream] = {
    "debug": "stdout", "info": "stdout", "warn": "stderr", "error": "stderr", "fatal": "stderr",
}

# `next start` output of the observed run (logs-default.stdout), port substituted.
_BANNER = (
    "   \u25b2 Next.js 15.5.0",
    "   - Local:        http://localhost:{port}",
    "   - Network:      http://localhost:{port}",
    "",
    " \u2713 Starting...",
    " \u2713 Ready in {ready_ms}ms",
    "[dotenv@17.2.1] injecting env (0) from .env -- tip: \u2699\ufe0f  load multiple .env files with"
    " { path: ['.env.local', '.env'] }",
)


@dataclass(frozen=True)
class PrintedLine:
    at_ms: int
    stream: Stream
    text: str


@dataclass(frozen=True)
class RequestFields:
    """What logger.ts copies from a NextRequest; ``ip`` is the raw X-Forwarded-For (else X-Real-IP)."""

    path: str
    method: str
    request_id: str | None = None
    user_agent: str | None = None
    ip: str | None = None


class AppLog:
    def __init__(self, clock: Clock, *, ring_size: int = 5000, echo: bool = False,
                 min_level: Level = "info") -> None:
        self._clock = clock
        self._ring: deque[PrintedLine] = deque(maxlen=ring_size)
        self._echo = echo
        self._min_rank = _RANK[min_level]

    def log(self, level: Level, message: str, context: Mapping[str, object] | None = None,
            request: RequestFields | None = None, *, at_ms: int | None = None) -> str | None:
        """Print one line as ``logger.<level>()`` does in production; returns it (None when filtered)."""
        if _RANK[level] < self._min_rank:
            return None
        at = self._clock.now_ms() if at_ms is None else at_ms
        entry: dict[str, object] = {"timestamp": js_iso(at), "level": level, "message": message}
        if context is not None:
            entry["context"] = dict(context)
        if request is not None:
            # Only defined values survive JSON.stringify, in LogEntry's assignment order.
            optional = (("requestId", request.request_id), ("path", request.path), ("method", request.method),
                        ("userAgent", request.user_agent), ("ip", request.ip))
            entry.update({key: value for key, value in optional if value is not None})
        text = js_json(entry)
        self._append(PrintedLine(at, _STREAM[level], text))
        return text

    def security(self, event: str, context: Mapping[str, object], request: RequestFields | None = None,
                 *, at_ms: int | None = None) -> str | None:
        """``log.security``: a warn line with ``securityEvent`` and its own ``timestamp`` in the context."""
        at = self._clock.now_ms() if at_ms is None else at_ms
        full = {**context, "securityEvent": True, "timestamp": js_iso(at)}
        return self.log("warn", f"Security event: {event}", full, request, at_ms=at)

    def print_raw(self, stream: Stream, text: str, *, at_ms: int | None = None) -> None:
        """Unstructured console output (banner, ``console.error(e)``); one ring entry per line."""
        at = self._clock.now_ms() if at_ms is None else at_ms
        for line in text.split("\n"):
            self._append(PrintedLine(at, stream, line))

    def print_banner(self, port: int, ready_ms: int = 640) -> None:
        for line in _BANNER:
            self.print_raw("stdout", line.replace("{port}", str(port)).replace("{ready_ms}", str(ready_ms)))

    def lines(self, *, since_ms: int | None = None, limit: int | None = None,
              stream: Stream | None = None) -> list[PrintedLine]:
        """Oldest first; ``since_ms`` is inclusive; ``limit`` keeps the newest."""
        selected = [
            line for line in self._ring
            if (since_ms is None or line.at_ms >= since_ms) and (stream is None or line.stream == stream)
        ]
        if limit is not None:
            selected = selected[-limit:] if limit > 0 else []
        return selected

    def _append(self, line: PrintedLine) -> None:
        self._ring.append(line)
        if self._echo:
            target = sys.stdout if line.stream == "stdout" else sys.stderr
            target.write(line.text + "\n")
            target.flush()
