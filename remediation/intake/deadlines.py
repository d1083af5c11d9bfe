"""Read deadlines: a request's head, then its body, must arrive within ``intake_read_timeout_s``.

uvicorn 0.54 has no read timeout (its only timer, ``timeout_keep_alive``, is armed after a response and cancelled
by the next byte), so a client that sends a partial head, or a head and part of a body, and then stalls holds a
socket and a file descriptor for as long as it likes: 1,000 such connections took the receiver from 55 to 1,055
descriptors for as long as the senders waited. Two layers close them:

* **the body**, :class:`BodyReadDeadline`: ASGI middleware inside the app (``create_app`` installs it), so it holds
  however the app is served. Each ``receive`` waits at most until the request's deadline; past it the endpoint
  gets :class:`RequestBodyTimeout`, answered ``408`` as JSON with ``Connection: close`` so uvicorn closes the
  connection once the answer is written.
* **the head**, :func:`http_protocol`: the app is not called before the head is complete, so this takes the HTTP
  protocol. It is uvicorn's own h11 protocol plus one timer: a connection must complete a request head within the
  deadline of opening (or of its previous response), and a body we already answered (a 404, a 401 sent before
  reading) must finish within the deadline of that answer. Serve with :func:`uvicorn_config` to get it.

The body deadline is counted from the moment the head arrived, for the whole body rather than per read, so a
sender trickling one byte a second cannot keep resetting it. At 10 s a legitimate 1 MB delivery needs 100 KB/s.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any, Literal, cast

import h11
import uvicorn
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from uvicorn.protocols.http.h11_impl import H11Protocol

from remediation.intake.logsafe import intake_logger
from remediation.intake.wire import IntakeError
from remediation.settings import Settings

log = intake_logger()


class RequestBodyTimeout(IntakeError):
    """The request body did not arrive within the read deadline: 408, and the connection is not kept."""

    def __init__(self, timeout_s: float) -> None:
        super().__init__(
            408,
            "request timeout",
            f"the request body did not arrive within {timeout_s:g} s",
            headers={"Connection": "close"},
        )


class BodyReadDeadline:
    """ASGI middleware: every ``receive`` of a request body returns by ``timeout_s`` after the request began."""

    def __init__(self, app: ASGIApp, timeout_s: float) -> None:
        self.app = app
        self.timeout_s = timeout_s

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        deadline = asyncio.get_running_loop().time() + self.timeout_s
        body_complete = False

        async def receive_before_deadline() -> Message:
            nonlocal body_complete
            if body_complete:
                # After the body, receive only reports a disconnect: waiting for that is not reading.
                return await receive()
            try:
                async with asyncio.timeout_at(deadline):
                    message = await receive()
            except TimeoutError:
                raise RequestBodyTimeout(self.timeout_s) from None
            body_complete = message["type"] != "http.request" or not message.get("more_body", False)
            return message

        await self.app(scope, receive_before_deadline, send)


Phase = Literal["head", "rest of an answered body"]


class ReadDeadlineH11Protocol(H11Protocol):
    """uvicorn's h11 protocol with a read deadline where uvicorn has none.

    ``head``: from the connection opening, or from the previous response, until a complete request head. A
    partial head is answered 408 (JSON) before the close; a connection that sent nothing is closed silently, as
    an idle keep-alive connection is. ``rest of an answered body``: the app answered without reading the whole
    body (404, 401 before reading); the client then has the deadline to finish sending it. While the app is
    reading a body, :class:`BodyReadDeadline` is in charge and no timer runs here.
    """

    read_timeout_s: float = 10.0

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._read_timer: asyncio.TimerHandle | None = None
        self._read_phase: Phase | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._sync_read_deadline()

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_read_deadline()
        super().connection_lost(exc)

    def handle_events(self) -> None:
        super().handle_events()
        self._sync_read_deadline()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        self._sync_read_deadline()

    def _awaited_phase(self) -> Phase | None:
        """What the connection is waiting for the client to send that no reader of the app is waiting for."""
        if self.transport is None or self.transport.is_closing():
            return None
        if self.conn.their_state is h11.IDLE:
            return "head"
        answered = self.cycle is not None and self.cycle.response_complete
        if self.conn.their_state is h11.SEND_BODY and answered:
            return "rest of an answered body"
        return None

    def _sync_read_deadline(self) -> None:
        phase = self._awaited_phase()
        if phase == self._read_phase:
            return  # unchanged: a trickle of bytes must not push the deadline back
        self._cancel_read_deadline()
        if phase is not None:
            self._read_phase = phase
            self._read_timer = self.loop.call_later(self.read_timeout_s, self._read_deadline_passed)

    def _cancel_read_deadline(self) -> None:
        if self._read_timer is not None:
            self._read_timer.cancel()
        self._read_timer, self._read_phase = None, None

    def _read_deadline_passed(self) -> None:
        phase = self._read_phase
        self._read_timer, self._read_phase = None, None
        if phase is None or self._awaited_phase() != phase:
            return
        client = f"{self.client[0]}:{self.client[1]}" if self.client else "an unknown client"
        partial_head = phase == "head" and bool(self.conn.trailing_data[0])
        if partial_head:
            # h11 cannot send a response before it has parsed a request; the connection is closed right after,
            # so writing the answer directly is safe.
            self.transport.write(_head_timeout_response(self.read_timeout_s))
        if partial_head or phase != "head":
            log.info("closed the connection from %s: the %s did not arrive within %g s", client, phase,
                     self.read_timeout_s)
        self.transport.close()


def _head_timeout_response(timeout_s: float) -> bytes:
    detail = f"the request head did not arrive within {timeout_s:g} s"
    body = json.dumps({"error": "request timeout", "detail": detail}, separators=(",", ":")).encode()
    head = (b"HTTP/1.1 408 Request Timeout\r\ncontent-type: application/json\r\nconnection: close\r\n"
            b"content-length: %d\r\n\r\n" % len(body))
    return head + body


def http_protocol(read_timeout_s: float) -> type[ReadDeadlineH11Protocol]:
    """uvicorn's ``http`` option: the h11 protocol with the given read deadline."""
    subclass = type("ReadDeadlineH11Protocol", (ReadDeadlineH11Protocol,), {"read_timeout_s": read_timeout_s})
    return cast("type[ReadDeadlineH11Protocol]", subclass)


def uvicorn_config(app: Any, settings: Settings, **options: Any) -> uvicorn.Config:
    """A uvicorn ``Config`` for the receiver: ``options`` as given, the HTTP protocol with the read deadline."""
    return uvicorn.Config(app, http=http_protocol(settings.intake_read_timeout_s), **options)
