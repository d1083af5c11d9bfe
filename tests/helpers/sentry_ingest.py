"""A local stand-in for Sentry's ingest endpoint: accepts envelopes (gzip or plain) and keeps their items."""

from __future__ import annotations

import gzip
import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class FakeIngest:
    port: int
    items: list[tuple[dict[str, Any], Any]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def dsn(self) -> str:
        return f"http://publickey@127.0.0.1:{self.port}/42"

    def events(self) -> list[dict[str, Any]]:
        with self.lock:
            return [payload for header, payload in self.items if header.get("type") == "event"]


def _parse(body: bytes) -> list[tuple[dict[str, Any], Any]]:
    lines = body.split(b"\n")
    items: list[tuple[dict[str, Any], Any]] = []
    index = 1  # line 0 is the envelope header
    while index + 1 < len(lines):
        if not lines[index].strip():
            index += 1
            continue
        header = json.loads(lines[index])
        raw = lines[index + 1]
        try:
            payload: Any = json.loads(raw)
        except ValueError:
            payload = raw
        items.append((header, payload))
        index += 2
    return items


@contextmanager
def fake_sentry_ingest() -> Iterator[FakeIngest]:
    ingest = FakeIngest(port=0)

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            if self.headers.get("Content-Encoding") == "gzip":
                body = gzip.decompress(body)
            with ingest.lock:
                ingest.items.extend(_parse(body))
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(b"{}")

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    ingest.port = server.server_address[1]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield ingest
    finally:
        server.shutdown()
        server.server_close()
