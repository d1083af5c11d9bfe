"""A small base for local fakes of bearer-token REST APIs (Vercel, Sentry, Clerk): real HTTP on 127.0.0.1.

A fake checks ``Authorization: Bearer <token>``, records every request (so tests can assert what was *not* sent),
can be told to answer the next requests with scripted faults (``429`` + ``Retry-After``, ``500``), and dispatches
the rest to its subclass's :meth:`FakeApi.handle`. State is guarded by one lock; handlers run on server threads.
"""

from __future__ import annotations

import json
from collections import deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import parse_qs, urlsplit

from tests.helpers.local_server import LocalHttpServer


@dataclass(frozen=True)
class Recorded:
    method: str
    path: str
    query: dict[str, list[str]]
    body: Any
    authorization: str | None


@dataclass
class Answer:
    status: int
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)


class FakeApi(LocalHttpServer):
    """Subclasses implement ``handle`` and ``unauthorized``; everything else is shared."""

    public_paths: tuple[str, ...] = ()
    poll_interval_s = 0.02

    def __init__(self, token: str) -> None:
        super().__init__()
        self.token = token
        self.requests: list[Recorded] = []
        self.faults: deque[Answer] = deque()

    # -- scripting and inspection ---------------------------------------------------------------------------------

    def fail_next(self, status: int, body: Any = None, headers: dict[str, str] | None = None, times: int = 1) -> None:
        with self.lock:
            for _ in range(times):
                self.faults.append(Answer(status, body, dict(headers or {})))

    def calls(self, method: str | None = None, path_contains: str = "") -> list[Recorded]:
        with self.lock:
            return [r for r in self.requests
                    if (method is None or r.method == method) and path_contains in r.path]

    # -- to implement ---------------------------------------------------------------------------------------------

    def handle(self, method: str, path: str, query: dict[str, list[str]], body: Any) -> Answer:
        raise NotImplementedError

    def unauthorized(self) -> Answer:
        return Answer(401, {"error": "unauthorized"})

    # -- plumbing -------------------------------------------------------------------------------------------------

    def _dispatch(self, handler: BaseHTTPRequestHandler) -> None:
        parts = urlsplit(handler.path)
        query = parse_qs(parts.query, keep_blank_values=True)
        length = int(handler.headers.get("Content-Length") or 0)
        raw = handler.rfile.read(length) if length else b""
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = raw.decode("utf-8", "replace")
        authorization = handler.headers.get("Authorization")
        with self.lock:
            self.requests.append(Recorded(handler.command, parts.path, query, body, authorization))
            if parts.path not in self.public_paths and authorization != f"Bearer {self.token}":
                answer = self.unauthorized()
            elif self.faults:
                answer = self.faults.popleft()
            else:
                try:
                    answer = self.handle(handler.command, parts.path, query, body)
                except Exception as exc:  # a bug in the fake must show, not hang the client
                    answer = Answer(500, {"fake_error": f"{type(exc).__name__}: {exc}"})
        payload = b"" if answer.body is None else json.dumps(answer.body).encode()
        handler.send_response(answer.status)
        for name, value in answer.headers.items():
            handler.send_header(name, value)
        if answer.body is not None:
            handler.send_header("Content-Type", "application/json")
        handler.send_header("Content-Length", str(len(payload)))
        handler.end_headers()
        handler.wfile.write(payload)


def one(query: dict[str, list[str]], name: str, default: str | None = None) -> str | None:
    values = query.get(name)
    return values[0] if values else default
