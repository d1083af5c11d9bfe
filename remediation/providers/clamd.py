"""The antivirus capability over clamd's TCP protocol (``z``-prefixed commands, NUL-terminated replies).

Every call opens its own connection (clamd closes the socket after one command unless a session is used) and is
bounded by ``timeout_s``. A daemon that is down, slow or answering nonsense is ``unavailable``/``error``, never
``ok``: a verdict on missing evidence must not lift a block or clear an upload.
"""

from __future__ import annotations

import asyncio
import contextlib
import struct

from remediation.providers.security import ScanVerdict

CHUNK = 64 * 1024
MAX_REPLY = 64 * 1024


class ClamdError(RuntimeError):
    """clamd could not be reached or did not answer in time."""


class ClamdAntivirus:
    def __init__(self, host: str = "127.0.0.1", port: int = 3310, *, timeout_s: float = 10.0) -> None:
        self.host = host
        self.port = port
        self.timeout_s = timeout_s

    @property
    def address(self) -> str:
        return f"clamd at {self.host}:{self.port}"

    async def _command(self, command: bytes, payload: bytes | None = None) -> str:
        async def exchange() -> bytes:
            reader, writer = await asyncio.open_connection(self.host, self.port)
            try:
                writer.write(b"z" + command + b"\0")
                if payload is not None:
                    for start in range(0, len(payload), CHUNK):
                        chunk = payload[start:start + CHUNK]
                        writer.write(struct.pack(">I", len(chunk)) + chunk)
                        await writer.drain()
                    writer.write(struct.pack(">I", 0))
                await writer.drain()
                return await reader.readuntil(b"\0")
            finally:
                writer.close()
                with contextlib.suppress(ConnectionError, OSError):
                    await writer.wait_closed()

        try:
            raw = await asyncio.wait_for(exchange(), timeout=self.timeout_s)
        except TimeoutError as exc:
            raise ClamdError(f"{self.address}: no answer to {command.decode()} within {self.timeout_s:g}s") from exc
        except asyncio.IncompleteReadError as exc:
            partial = exc.partial[:200].decode("utf-8", "replace").strip("\0\n ")
            if partial:  # e.g. "INSTREAM size limit exceeded. ERROR" before clamd closed the socket
                return partial
            raise ClamdError(f"{self.address}: connection closed without an answer to {command.decode()}") from exc
        except asyncio.LimitOverrunError as exc:
            raise ClamdError(f"{self.address}: reply to {command.decode()} too long") from exc
        except (ConnectionError, OSError) as exc:
            raise ClamdError(f"{self.address}: {type(exc).__name__}: {exc}") from exc
        return raw.rstrip(b"\0").decode("utf-8", "replace").strip()

    async def ping(self) -> bool:
        try:
            return await self._command(b"PING") == "PONG"
        except ClamdError:
            return False

    async def version(self) -> str | None:
        try:
            return await self._command(b"VERSION") or None
        except ClamdError:
            return None

    async def scan(self, data: bytes) -> ScanVerdict:
        try:
            reply = await self._command(b"INSTREAM", data)
        except ClamdError as exc:
            return ScanVerdict(status="unavailable", detail=str(exc))
        return parse_scan_reply(reply)

    async def reload(self) -> bool:
        try:
            return await self._command(b"RELOAD") == "RELOADING"
        except ClamdError:
            return False


def parse_scan_reply(reply: str) -> ScanVerdict:
    """``stream: OK`` / ``stream: <Name> FOUND`` / ``... ERROR``; anything else is an error, not a pass."""
    text = reply.strip()
    if text.endswith(" ERROR"):
        return ScanVerdict(status="error", detail=text)
    body = text.removeprefix("stream:").strip()
    if body == "OK":
        return ScanVerdict(status="ok", detail=text)
    if body.endswith(" FOUND"):
        return ScanVerdict(status="found", signature=body.removesuffix(" FOUND").strip() or None, detail=text)
    return ScanVerdict(status="error", detail=f"unexpected clamd reply: {text[:200]!r}")
