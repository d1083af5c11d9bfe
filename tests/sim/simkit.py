"""Helpers for the simulator tests: captured fixtures, raw HTTP exchanges, polling, masking."""

from __future__ import annotations

import http.client
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar
from urllib.parse import urlsplit

REPO_ROOT = Path(__file__).resolve().parents[2]
FIXTURES = REPO_ROOT / "tests" / "fixtures" / "kamkmserve"

T = TypeVar("T")


@dataclass
class Exchange:
    """One HTTP response with its header block as sent: order, duplicates and letter case intact."""

    status_line: str
    headers: list[tuple[str, str]]
    body: str
    server_stdout: list[str] = field(default_factory=list)
    server_stderr: list[str] = field(default_factory=list)

    @property
    def status(self) -> int:
        return int(self.status_line.split()[1])

    def header(self, name: str) -> str | None:
        for key, value in self.headers:
            if key.lower() == name.lower():
                return value
        return None


def load_fixture(name: str) -> Exchange:
    """Parse a captured ``.http`` file: title, curl and ``# at`` lines, then the raw response."""
    lines = (FIXTURES / name).read_text(encoding="utf-8").split("\n")
    response = lines[3:]
    blank = response.index("")
    headers = [tuple(line.split(": ", 1)) for line in response[1:blank]]
    rest = response[blank + 1:]
    body_lines: list[str] = []
    streams: dict[str, list[str]] = {"stdout": [], "stderr": []}
    current: list[str] | None = None
    for line in rest:
        marker = re.fullmatch(r"--- server (stdout|stderr):", line)
        if marker:
            current = streams[marker.group(1)]
        elif current is not None:
            if line:
                current.append(line)
        else:
            body_lines.append(line)
    body = "\n".join(body_lines)
    return Exchange(response[0], [(k, v) for k, v in headers], body.rstrip("\n"),
                    streams["stdout"], streams["stderr"])


def fetch(base_url: str, path: str, *, method: str = "GET", headers: dict[str, str] | None = None,
          body: bytes | None = None, timeout_s: float = 10.0) -> Exchange:
    """A request over a fresh connection, keeping the response headers exactly as they arrived."""
    parts = urlsplit(base_url)
    connection = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port, timeout=timeout_s)
    try:
        connection.request(method, path, body=body, headers=headers or {})
        response = connection.getresponse()
        payload = response.read().decode("utf-8", "replace")
        return Exchange(f"HTTP/1.1 {response.status} {response.reason}", list(response.getheaders()), payload)
    finally:
        connection.close()


def poll(check: Callable[[], T | None], *, timeout_s: float = 10.0, interval_s: float = 0.05,
         what: str = "condition") -> T:
    """Call ``check`` until it returns something truthy (and return that), or fail after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s}s waiting for {what}")
        time.sleep(interval_s)


def mask_numbers(text: str) -> str:
    """Replace every number (and ISO timestamp) so structure can be compared line by line."""
    text = re.sub(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", "<ts>", text)
    return re.sub(r"-?\d+(\.\d+)?(e[+-]\d+)?", "<n>", text)
