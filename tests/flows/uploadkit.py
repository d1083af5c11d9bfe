"""Shared helpers for the upload runbook's scenario tests (simulated and real PostgreSQL + clamd backends).

Two sets: the first reads a simulator server over HTTP on the wall clock (``SimServer``); the ``*_in`` ones read a
``VirtualWorld`` (the simulator in-process, on virtual time) and wait by advancing its clock, never the wall's.
"""

from __future__ import annotations

from typing import Any

import httpx
from kamkmserve_sim import SimServer

from tests.flows.flowkit import wait_until
from tests.flows.timekit import VirtualWorld
from tests.helpers import local_http

# Fast, but faithful: a short window, two detections to act on, quick verification.
UPLOAD_FAST: dict[str, Any] = {"window_s": 120.0, "min_detections": 3, "verify_consecutive": 2,
                               "verify_interval_s": 0.3, "verify_deadline_s": 8.0}
ATTACKER = "203.0.113.66"
DEFAULT_EXT = [".png", ".jpg", ".jpeg", ".webp", ".pdf"]
DEFAULT_MIME = ["image/png", "image/jpeg", "image/webp", "application/pdf"]


def plane(server: SimServer, path: str, **params: str) -> Any:
    return local_http.get(f"{server.url}/_sim{path}", params=params, timeout=10).json()


def blocks(server: SimServer) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = plane(server, "/blocks")["blocks"]
    return found


def allowlist(server: SimServer) -> dict[str, list[str]]:
    found: dict[str, list[str]] = plane(server, "/uploads/allowlist")
    return found


def wait_for_burst(server: SimServer, detections: int = 6) -> None:
    """Block until the scanner has rejected ``detections`` of the attacker's uploads."""
    wait_until(f"{detections} malware detections",
               lambda: plane(server, "/antivirus")["detections"] >= detections)


def multipart(filename: str, content_type: str, data: bytes,
              forwarded_for: str | None = None) -> tuple[bytes, dict[str, str]]:
    """The body and headers of ``POST /api/uploads`` for one file, as curl sends it (behind ``forwarded_for``)."""
    boundary = "----uploadkit"
    head = (f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="{filename}"\r\n'
            f"Content-Type: {content_type}\r\n\r\n").encode()
    headers = {"content-type": f"multipart/form-data; boundary={boundary}", "user-agent": "curl/8.5.0"}
    if forwarded_for is not None:
        headers["x-forwarded-for"] = forwarded_for
    return head + data + f"\r\n--{boundary}--\r\n".encode(), headers


def upload(server: SimServer, filename: str, content_type: str, data: bytes,
           forwarded_for: str | None = None) -> httpx.Response:
    body, headers = multipart(filename, content_type, data, forwarded_for)
    return local_http.post(f"{server.url}/api/uploads", content=body, headers=headers, timeout=10)


async def plane_in(world: VirtualWorld, path: str) -> Any:
    """``plane`` on virtual time: a reading of ``/_sim{path}``."""
    return await world.read(f"/_sim{path}")


async def blocks_in(world: VirtualWorld) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = (await plane_in(world, "/blocks"))["blocks"]
    return found


async def allowlist_in(world: VirtualWorld) -> dict[str, list[str]]:
    found: dict[str, list[str]] = await plane_in(world, "/uploads/allowlist")
    return found


async def burst_in(world: VirtualWorld, detections: int = 6) -> None:
    """``wait_for_burst`` on virtual time: advance until the scanner has rejected ``detections`` uploads."""
    await world.advance_until(f"{detections} malware detections", lambda av: av["detections"] >= detections,
                              reading="/_sim/antivirus")


async def upload_in(world: VirtualWorld, filename: str, content_type: str, data: bytes,
                    forwarded_for: str | None = None) -> httpx.Response:
    """``upload`` on virtual time: any status is returned (the edge's 403, the app's 400), as over HTTP."""
    body, headers = multipart(filename, content_type, data, forwarded_for)
    async with world.client(timeout=10) as client:
        return await client.post("/api/uploads", content=body, headers=headers)
