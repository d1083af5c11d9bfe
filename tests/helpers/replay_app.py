"""The real kamkmserve, as captured: a local HTTP server that answers each request with the captured response.

The captures are ``tests/fixtures/kamkmserve/*.http`` (byte-identical copies of the shared ones): a ``#`` title line,
the request as a curl command line, ``# at <time>``, then the raw response (status line, headers, blank line, body,
optionally ``--- server stdout:``/``--- server stderr:`` sections, which are the app's own output, not the body).

A request is matched on method and target (path with query, then path alone). Anything that was never captured is
answered ``404`` as plain text, never made up, so a reader of it can only conclude "not judged". Every request is
recorded, so tests can assert what was never sent.
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from urllib.parse import urlsplit

from tests.helpers.local_server import LocalHttpServer

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "kamkmserve"
NOT_CAPTURED = b"not captured"
_HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "date", "content-length"}


@dataclass(frozen=True)
class Capture:
    name: str
    method: str
    target: str  # path with query, as curl asked for it
    status: int
    reason: str
    headers: tuple[tuple[str, str], ...]
    body: bytes


def parse_capture(path: Path) -> Capture:
    lines = path.read_text(encoding="utf-8").split("\n")
    title, curl, at = lines[0], lines[1], lines[2]
    if not (title.startswith("# ") and curl.startswith("$ curl ") and at.startswith("# at ")):
        raise ValueError(f"{path.name}: not a captured exchange")
    words = shlex.split(curl[2:])
    method = words[words.index("-X") + 1] if "-X" in words else "GET"
    url = urlsplit(next(w for w in words if w.startswith("http://") or w.startswith("https://")))
    response = lines[3:]
    blank = response.index("")
    status_line = response[0].split(" ", 2)
    headers = tuple((k, v) for k, v in (line.split(": ", 1) for line in response[1:blank]))
    body: list[str] = []
    for line in response[blank + 1:]:
        if re.fullmatch(r"--- server (stdout|stderr):", line):
            break
        body.append(line)
    text = "\n".join(body).rstrip("\n")
    return Capture(name=path.name, method=method, target=url.path + (f"?{url.query}" if url.query else ""),
                   status=int(status_line[1]), reason=status_line[2] if len(status_line) > 2 else "",
                   headers=headers, body=text.encode("utf-8"))


class ReplayApp(LocalHttpServer):
    def __init__(self, *names: str) -> None:
        super().__init__()
        self.captures = [parse_capture(FIXTURES / name) for name in names]
        self.requests: list[tuple[str, str]] = []  # (method, target) in arrival order

    def answer_for(self, method: str, target: str) -> Capture | None:
        path = urlsplit(target).path
        for wanted in (target, path):
            for capture in self.captures:
                if capture.method == method and capture.target == wanted:
                    return capture
        return None

    def _dispatch(self, handler: BaseHTTPRequestHandler) -> None:
        length = int(handler.headers.get("content-length") or 0)
        if length:
            handler.rfile.read(length)
        with self.lock:
            self.requests.append((handler.command, handler.path))
        capture = self.answer_for(handler.command, handler.path)
        if capture is None:
            handler.send_response(404)
            handler.send_header("content-type", "text/plain")
            handler.send_header("content-length", str(len(NOT_CAPTURED)))
            handler.end_headers()
            handler.wfile.write(NOT_CAPTURED)
            return
        handler.send_response(capture.status, capture.reason)
        for name, value in capture.headers:
            if name.lower() not in _HOP_BY_HOP:
                handler.send_header(name, value)
        handler.send_header("content-length", str(len(capture.body)))
        handler.end_headers()
        handler.wfile.write(capture.body)
