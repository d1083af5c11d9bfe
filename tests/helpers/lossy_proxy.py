"""An HTTP proxy in front of the simulator's control plane that loses answers the way a network does.

What a lever call that "times out" really is: the request reached the platform, the platform acted, and the answer
never made it back. ``lose_answer`` reproduces exactly that: the proxy forwards the request, the simulator applies
it, and the proxy holds the answer until the client gives up and closes the connection (its own read timeout, so no
test sleeps for a fixed time). ``refuse_connections`` closes the listening socket: the next request is refused
before it is sent (ECONNREFUSED), the "certainly not applied" case. ``then_refuse`` combines them: the answer is
lost and every later request (the gate's read-back) is refused.

Each request the proxy forwarded is kept in ``forwarded`` in order, so a test counts how often a mutation reached
the platform (applied twice would show as two).

One request per connection (the adapters open a client per call); runs its own event loop on a daemon thread.
"""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Self

import httpx

#: Headers the proxy passes on in either direction (the rest are about the hop, not the exchange).
_PASSED = ("content-type", "retry-after", "ratelimit-remaining")


@dataclass(frozen=True)
class Forwarded:
    method: str
    path: str
    body: Any  # parsed JSON, or the raw text

    def is_(self, method: str, path: str) -> bool:
        return self.method == method and self.path.split("?", 1)[0] == path


@dataclass
class _Loss:
    method: str
    path: str
    when: Callable[[Any], bool]
    then_refuse: bool
    spent: bool = False


@dataclass
class LossyProxy:
    upstream: str
    forwarded: list[Forwarded] = field(default_factory=list)
    answers_lost: int = 0

    def __post_init__(self) -> None:
        self.upstream = self.upstream.rstrip("/")
        self._losses: list[_Loss] = []
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._server: asyncio.Server | None = None
        self._thread: threading.Thread | None = None
        self._handlers: set[asyncio.Task[None]] = set()
        self.port = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    # -- what the test arranges -------------------------------------------------------------------------------------

    def lose_answer(self, method: str, path: str, *, when: Callable[[Any], bool] = lambda body: True,
                    then_refuse: bool = False) -> None:
        """The next ``method path`` (whose JSON body satisfies ``when``) is forwarded and its answer held until the
        client gives up. ``then_refuse``: stop listening as soon as it is forwarded (the read-back is refused)."""
        with self._lock:
            self._losses.append(_Loss(method, path, when, then_refuse))

    def refuse_connections(self) -> None:
        """Stop listening now: every later request is refused before anything is sent."""
        loop, server = self._loop, self._server
        if loop is not None and server is not None:
            asyncio.run_coroutine_threadsafe(self._stop_listening(), loop).result(timeout=5)

    def mutations(self, method: str, path: str) -> list[Forwarded]:
        with self._lock:
            return [f for f in self.forwarded if f.is_(method, path)]

    # -- lifecycle ---------------------------------------------------------------------------------------------------

    def start(self) -> Self:
        started = threading.Event()

        def run() -> None:
            loop = asyncio.new_event_loop()
            self._loop = loop
            self._server = loop.run_until_complete(asyncio.start_server(self._handle, "127.0.0.1", 0))
            self.port = self._server.sockets[0].getsockname()[1]
            started.set()
            loop.run_forever()
            loop.close()

        self._thread = threading.Thread(target=run, name="lossy-proxy", daemon=True)
        self._thread.start()
        if not started.wait(timeout=10):
            raise RuntimeError("the proxy did not start")
        return self

    def stop(self) -> None:
        loop = self._loop
        if loop is None:
            return
        asyncio.run_coroutine_threadsafe(self._shutdown(), loop).result(timeout=10)
        loop.call_soon_threadsafe(loop.stop)
        if self._thread is not None:
            self._thread.join(timeout=10)
        self._loop = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    async def _stop_listening(self) -> None:
        if self._server is not None:
            self._server.close()  # the listening socket only: exchanges under way carry on

    async def _shutdown(self) -> None:
        await self._stop_listening()
        for task in list(self._handlers):
            task.cancel()
        await asyncio.gather(*self._handlers, return_exceptions=True)

    # -- one exchange ------------------------------------------------------------------------------------------------

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._handlers.add(task)
        try:
            await self._exchange(reader, writer)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass  # the client went away first: nothing to answer
        finally:
            self._handlers.discard(task)
            writer.close()

    async def _exchange(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1")
        request_line, *lines = head.split("\r\n")
        method, target, _ = request_line.split(" ", 2)
        headers = {k.strip().lower(): v.strip() for k, v in (line.split(":", 1) for line in lines if ":" in line)}
        raw = await reader.readexactly(int(headers.get("content-length", "0")))
        body = _parsed(raw)
        async with httpx.AsyncClient(timeout=30) as client:
            answer = await client.request(method, f"{self.upstream}{target}", content=raw,
                                          headers={k: headers[k] for k in _PASSED if k in headers})
        loss = self._take_loss(method, target, body)
        with self._lock:
            self.forwarded.append(Forwarded(method, target, body))
        if loss is not None:
            if loss.then_refuse:
                await self._stop_listening()
            with self._lock:
                self.answers_lost += 1
            await reader.read()  # held until the client gives up (its read timeout closes the connection)
            return
        status = f"HTTP/1.1 {answer.status_code} {answer.reason_phrase}\r\n"
        passed = "".join(f"{k}: {answer.headers[k]}\r\n" for k in _PASSED if k in answer.headers)
        writer.write((status + passed + f"content-length: {len(answer.content)}\r\nconnection: close\r\n\r\n")
                     .encode("latin-1") + answer.content)
        await writer.drain()

    def _take_loss(self, method: str, target: str, body: Any) -> _Loss | None:
        path = target.split("?", 1)[0]
        with self._lock:
            for loss in self._losses:
                if not loss.spent and loss.method == method and loss.path == path and loss.when(body):
                    loss.spent = True
                    return loss
        return None


def _parsed(raw: bytes) -> Any:
    try:
        return json.loads(raw) if raw else None
    except ValueError:
        return raw.decode("utf-8", "replace")
