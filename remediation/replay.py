"""Replay of captured kamkmserve answers: a real HTTP server that answers with what the real app answered.

A capture (``tests/fixtures/kamkmserve/*.http``) is one exchange with the real app: a ``#`` title line, the request
as a curl command line, ``# at <time>``, then the raw response (status line, headers, a blank line, the body), and
possibly ``--- server stdout:`` / ``--- server stderr:`` sections with the app's own log lines. The capture tool ends
the body with one newline of its own (an empty body still gets one), which is not part of the answer. A capture
taken with ``curl -D - -o /dev/null`` has no blank line and no body: it is served with an empty body.

How a request is answered:

* **Matching.** By method, path and query. A request whose query carries more than a capture's (``?format=health&
  window=5m``) matches the capture with the most of its parameters (``?format=health``); a capture without a query
  matches any query. ``HEAD`` is answered from the ``GET`` captures: same headers and ``Content-Length``, no body.
* **Several captures of one request** (the metrics page fresh, after other routes, after uploads, final) are served
  in capture order (their ``# at`` time), one per request, and the **last one is kept** once reached. The app's
  state only moves forward (counters grow, ``process_uptime_seconds`` rises); cycling back to the first capture
  would look like a restart of the app.
* **Nothing captured** for the request: the app's own 404, i.e. the 404 capture whose parent path is the longest
  prefix of the request's path (``/api/x`` gets the answer of ``/api/health``, ``/x`` that of ``/nonexistent``), with
  ``x-middleware-rewrite`` naming the requested path as the app does. Without any 404 capture, a bare 404.
* **Rate-limited mode**: every ``/api/*`` request is answered with the rate limiter's 429 capture.
* **Headers** are the captured ones, in order and letter case, less the hop-by-hop ones (``Connection``,
  ``Keep-Alive``, ``Transfer-Encoding`` ...) and ``Content-Length``, which is computed from the body served. One
  header is added: ``x-replay-capture`` names the file that answered.

Only one run of the app is served at a time: ``pattern`` picks its files (``default-*.http`` by default: the run
with default settings; ``avreject-*.http`` is the run with the antivirus rejecting everything).

Every request received is recorded (method, target, headers, body, the capture that answered) in
:attr:`ReplayServer.requests`, and appended as one JSON line to ``log_path`` when given.
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Self
from urllib.parse import parse_qsl, urlsplit

DEFAULT_PATTERN = "default-*.http"
RATE_LIMIT_CAPTURE = "ratelimited-metrics-429.http"
HOP_BY_HOP = frozenset({"connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "te", "trailer",
                        "transfer-encoding", "upgrade", "content-length"})
_LOG_SECTION = re.compile(rb"\n--- server (?:stdout|stderr):\n")


@dataclass(frozen=True)
class Capture:
    """One captured exchange: the request it answered and the raw response."""

    name: str
    at: str
    method: str
    path: str
    query: str
    status: int
    reason: str
    headers: tuple[tuple[str, str], ...]
    body: bytes

    @property
    def params(self) -> frozenset[tuple[str, str]]:
        return frozenset(parse_qsl(self.query, keep_blank_values=True))


def parse_capture(path: Path) -> Capture:
    """Read one ``.http`` capture, bytes as they are (the body is not decoded)."""
    raw = path.read_bytes()
    title, curl, at, rest = raw.split(b"\n", 3)
    if not (title.startswith(b"#") and curl.startswith(b"$ curl ") and at.startswith(b"# at ")):
        raise ValueError(f"{path.name}: not a capture (title, curl and '# at' lines expected)")
    command = curl.decode()
    url = re.search(r"https?://\S+", command)
    if url is None:
        raise ValueError(f"{path.name}: no URL in the curl line")
    explicit = re.search(r"(?:^|\s)-X\s+([A-Z]+)", command)
    if explicit:
        method = explicit.group(1)
    elif re.search(r"(?:^|\s)(?:-F|-d|--data\S*|--form)\s", command):
        method = "POST"
    elif re.search(r"(?:^|\s)(?:-I|--head)(?:\s|$)", command):
        method = "HEAD"
    else:
        method = "GET"
    response = _LOG_SECTION.split(rest, maxsplit=1)[0]
    head, blank, body = response.partition(b"\n\n")
    if blank:
        body = body.removesuffix(b"\n")  # the capture tool's own line end
    else:
        head, body = head.removesuffix(b"\n"), b""
    status_line, *header_lines = head.decode("latin-1").split("\n")
    _, status, reason = status_line.split(" ", 2)
    headers = tuple((name, value) for name, _, value in (line.partition(": ") for line in header_lines if line))
    target = urlsplit(url.group(0))
    return Capture(name=path.name, at=at.decode()[len("# at "):].strip(), method=method, path=target.path or "/",
                   query=target.query, status=int(status), reason=reason, headers=headers, body=body)


@dataclass(frozen=True)
class ReplayRequest:
    """One request the replay received, and what answered it."""

    method: str
    target: str
    headers: tuple[tuple[str, str], ...]
    body: bytes
    status: int
    capture: str | None  # None: no capture of 404 either, a bare 404 answered
    matched: bool  # False: nothing captured for this request, the app's 404 answered

    @property
    def path(self) -> str:
        return urlsplit(self.target).path

    def header(self, name: str) -> str | None:
        return next((value for key, value in self.headers if key.lower() == name.lower()), None)

    def as_json(self) -> dict[str, Any]:
        return {"method": self.method, "target": self.target, "headers": [list(h) for h in self.headers],
                "body_bytes": len(self.body), "status": self.status, "capture": self.capture, "matched": self.matched}


@dataclass
class _Answer:
    status: int
    reason: str
    headers: list[tuple[str, str]]
    body: bytes
    capture: str | None
    matched: bool


@dataclass
class ReplayServer:
    """Serve a directory of captures on ``host:port`` (0: an ephemeral port) from a background thread."""

    directory: Path
    port: int = 0
    host: str = "127.0.0.1"
    rate_limited: bool = False
    pattern: str = DEFAULT_PATTERN
    log_path: Path | None = None
    echo: Callable[[str], None] | None = None
    captures: dict[tuple[str, str, str], list[Capture]] = field(init=False, repr=False)
    _not_found: list[Capture] = field(init=False, repr=False)
    _rate_limit: Capture | None = field(init=False, repr=False)
    _served: dict[tuple[str, str, str], int] = field(init=False, repr=False, default_factory=dict)
    _requests: list[ReplayRequest] = field(init=False, repr=False, default_factory=list)
    _lock: threading.Lock = field(init=False, repr=False, default_factory=threading.Lock)
    _server: ThreadingHTTPServer | None = field(init=False, repr=False, default=None)

    def __post_init__(self) -> None:
        self.directory = Path(self.directory)
        loaded = sorted((parse_capture(p) for p in self.directory.glob(self.pattern) if p.name != RATE_LIMIT_CAPTURE),
                        key=lambda c: (c.at, c.name))
        if not loaded:
            raise ValueError(f"no capture matches {self.directory / self.pattern}")
        self.captures = {}
        for capture in loaded:
            self.captures.setdefault((capture.method, capture.path, capture.query), []).append(capture)
        self._not_found = [c for c in loaded if c.status == 404]
        limiter = self.directory / RATE_LIMIT_CAPTURE
        self._rate_limit = parse_capture(limiter) if limiter.is_file() else None
        if self.rate_limited and self._rate_limit is None:
            raise ValueError(f"rate-limited mode needs {limiter}")

    # -- lifecycle ---------------------------------------------------------------------------------------------

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def bind(self) -> Self:
        """Open the listening socket (``port`` becomes the real one); :meth:`start` or :meth:`serve_forever` serve."""
        if self._server is None:
            self._server = ThreadingHTTPServer((self.host, self.port), _handler(self))
            self._server.daemon_threads = True
            self.port = self._server.server_address[1]
        return self

    def start(self) -> Self:
        """Serve from a daemon thread; returns once the socket listens."""
        server = self.bind()._server
        assert server is not None
        threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True,
                         name=f"replay:{self.port}").start()
        return self

    def serve_forever(self) -> None:
        """Serve on the calling thread until interrupted."""
        server = self.bind()._server
        assert server is not None
        try:
            server.serve_forever(poll_interval=0.2)
        finally:
            server.server_close()
            self._server = None

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- what it saw -------------------------------------------------------------------------------------------

    @property
    def requests(self) -> list[ReplayRequest]:
        """Every request received so far, in arrival order (a copy)."""
        with self._lock:
            return list(self._requests)

    # -- answering ---------------------------------------------------------------------------------------------

    def answer(self, method: str, target: str) -> _Answer:
        """What the app answered to this request (advances that request's sequence of captures)."""
        parts = urlsplit(target)
        path = parts.path or "/"
        if self.rate_limited and self._rate_limit is not None and (path == "/api" or path.startswith("/api/")):
            return self._from(self._rate_limit, matched=True)
        key = self._match("GET" if method == "HEAD" else method, path, parts.query)
        if key is not None:
            with self._lock:
                sequence = self.captures[key]
                index = self._served.get(key, 0)
                self._served[key] = min(index + 1, len(sequence) - 1)
            return self._from(sequence[index], matched=True)
        not_found = self._closest_not_found(path)
        if not_found is None:
            return _Answer(404, "Not Found", [("content-type", "text/plain")], b"Not Found", None, False)
        answer = self._from(not_found, matched=False)
        answer.headers = [(k, path if k.lower() == "x-middleware-rewrite" else v) for k, v in answer.headers]
        return answer

    def _match(self, method: str, path: str, query: str) -> tuple[str, str, str] | None:
        if (method, path, query) in self.captures:
            return (method, path, query)
        asked = frozenset(parse_qsl(query, keep_blank_values=True))
        candidates = [(len(seq[0].params), key) for key, seq in self.captures.items()
                      if key[:2] == (method, path) and seq[0].params <= asked]
        return max(candidates)[1] if candidates else None

    def _closest_not_found(self, path: str) -> Capture | None:
        def parent(capture: Capture) -> str:
            return capture.path.rsplit("/", 1)[0] + "/"

        fitting = [c for c in self._not_found if path.startswith(parent(c))]
        return max(fitting, key=lambda c: len(parent(c)), default=None)

    @staticmethod
    def _from(capture: Capture, *, matched: bool) -> _Answer:
        headers = [(k, v) for k, v in capture.headers if k.lower() not in HOP_BY_HOP]
        headers.append(("x-replay-capture", capture.name))
        return _Answer(capture.status, capture.reason, headers, capture.body, capture.name, matched)

    def _record(self, request: ReplayRequest) -> None:
        with self._lock:
            self._requests.append(request)
            if self.log_path is not None:
                with self.log_path.open("a", encoding="utf-8") as log:
                    log.write(json.dumps({"at": time.time(), **request.as_json()}) + "\n")
        if self.echo is not None:
            self.echo(f"{request.method} {request.target} -> {request.status} ({request.capture or 'bare 404'})")


def _handler(replay: ReplayServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive, like the real app
        server_version = "replay"

        def _serve(self) -> None:
            body = self._read_body()
            answer = replay.answer(self.command, self.path)
            replay._record(ReplayRequest(method=self.command, target=self.path, headers=tuple(self.headers.items()),
                                         body=body, status=answer.status, capture=answer.capture,
                                         matched=answer.matched))
            self.send_response_only(answer.status, answer.reason)
            for name, value in answer.headers:
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(answer.body)))  # for HEAD: what GET would send
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(answer.body)

        def _read_body(self) -> bytes:
            if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
                chunks = []
                while size := int(self.rfile.readline().split(b";")[0].strip() or b"0", 16):
                    chunks.append(self.rfile.read(size))
                    self.rfile.readline()
                while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                    pass  # trailers
                return b"".join(chunks)
            return self.rfile.read(int(self.headers.get("Content-Length") or 0))

        do_GET = do_HEAD = do_POST = do_PUT = do_PATCH = do_DELETE = do_OPTIONS = _serve

        def log_message(self, *args: Any) -> None:
            pass  # requests are recorded (and echoed) by the replay itself

    return Handler
