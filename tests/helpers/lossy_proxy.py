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

``LossyLink`` is the same thing on virtual time, for the in-process simulator (``tests.flows.timekit``): an
``httpx`` transport around the simulator's, answering for its own URL (give it as the control plane's URL). A lost
answer is still a request the simulator received and applied; only its answer is replaced by the
``httpx.ReadTimeout`` the client would have raised once its read timeout ran out (at once: on virtual time nobody
waits for it, as the in-process simulator does for any answer slower than the read timeout). A refused request is
an ``httpx.ConnectError`` raised before anything is sent. The simulator's clock (``/_sim/time``) is not behind the
link: on the wall clock the runbook's clock is not behind the proxy either.
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


class _Losses:
    """What the test arranges and reads back, shared by the socket proxy and the in-process link."""

    forwarded: list[Forwarded]
    _losses: list[_Loss]
    _lock: threading.Lock

    def lose_answer(self, method: str, path: str, *, when: Callable[[Any], bool] = lambda body: True,
                    then_refuse: bool = False) -> None:
        """The next ``method path`` (whose JSON body satisfies ``when``) is forwarded and its answer held until the
        client gives up. ``then_refuse``: stop listening as soon as it is forwarded (the read-back is refused)."""
        with self._lock:
            self._losses.append(_Loss(method, path, when, then_refuse))

    def mutations(self, method: str, path: str) -> list[Forwarded]:
        with self._lock:
            return [f for f in self.forwarded if f.is_(method, path)]

    def _take_loss(self, method: str, target: str, body: Any) -> _Loss | None:
        path = target.split("?", 1)[0]
        with self._lock:
            for loss in self._losses:
                if not loss.spent and loss.method == method and loss.path == path and loss.when(body):
                    loss.spent = True
                    return loss
        return None


@dataclass
class LossyProxy(_Losses):
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

    def refuse_connections(self) -> None:
        """Stop listening now: every later request is refused before anything is sent."""
        loop, server = self._loop, self._server
        if loop is not None and server is not None:
            asyncio.run_coroutine_threadsafe(self._stop_listening(), loop).result(timeout=5)

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

class LossyLink(_Losses):
    """``LossyProxy`` as an ``httpx`` transport in front of the in-process simulator (see the module's docstring).

    ``wrap(transport)`` is the transport to give the runbook's clients: requests to :attr:`url` are the control
    plane's and go through the link to the simulator; every other request (the app's own pages) goes straight on.
    """

    url = "http://lossy-link.invalid"
    #: The simulator's clock: the runbook's waits on virtual time, not the platform (never lost, never counted).
    CLOCK = "/_sim/time"

    def __init__(self, upstream: str) -> None:
        self.upstream = upstream.rstrip("/")
        self.forwarded: list[Forwarded] = []
        self.answers_lost = 0
        self.refused = False
        self._losses: list[_Loss] = []
        self._lock = threading.Lock()

    def refuse_connections(self) -> None:
        """Stop listening now: every later request is refused before anything is sent."""
        self.refused = True

    def wrap(self, inner: httpx.AsyncBaseTransport) -> httpx.AsyncBaseTransport:
        return _LinkTransport(self, inner)

    async def exchange(self, request: httpx.Request, inner: httpx.AsyncBaseTransport) -> httpx.Response:
        target = request.url.raw_path.decode("ascii")
        upstream = httpx.Request(request.method, f"{self.upstream}{target}", headers=request.headers,
                                 content=await request.aread(), extensions=request.extensions)
        if target.startswith(self.CLOCK):
            return await inner.handle_async_request(upstream)
        if self.refused:
            raise httpx.ConnectError("[Errno 111] Connection refused (the link is refusing)", request=request)
        answer = await inner.handle_async_request(upstream)
        await answer.aread()
        body = _parsed(upstream.content)
        loss = self._take_loss(request.method, target, body)
        with self._lock:
            self.forwarded.append(Forwarded(request.method, target, body))
        if loss is None:
            return answer
        await answer.aclose()
        if loss.then_refuse:
            self.refused = True
        with self._lock:
            self.answers_lost += 1
        raise httpx.ReadTimeout("the answer was lost on the way back (read timeout)", request=request)


class _LinkTransport(httpx.AsyncBaseTransport):
    def __init__(self, link: LossyLink, inner: httpx.AsyncBaseTransport) -> None:
        self._link = link
        self._inner = inner

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if request.url.host == httpx.URL(self._link.url).host:
            return await self._link.exchange(request, self._inner)
        return await self._inner.handle_async_request(request)


def _parsed(raw: bytes) -> Any:
    try:
        return json.loads(raw) if raw else None
    except ValueError:
        return raw.decode("utf-8", "replace")
