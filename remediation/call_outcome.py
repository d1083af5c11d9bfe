"""What a lever call that raised says about the platform: certainly unchanged, or maybe changed.

A lever call can fail three ways, and they mean different things for the ledger:

* **not sent**: the request never reached the platform (connection refused, DNS, connect timeout, no credentials):
  nothing can have changed.
* **refused**: the platform answered, and not with success (a 4xx, a validation error, a post-condition the gate
  checked on the answer): it says nothing changed, and its word is all there is.
* **answer lost**: the request went out and its answer did not come back (read timeout, connection dropped after
  sending, a gateway that gave up on the platform, a cancelled statement): it may have taken effect. Recording it
  ``failed`` would be a guess, and a wrong one leaves a containment on that nobody will undo; the gate reads the
  platform back instead (``remediation.read_back``).

Adapters wrap transport errors in their own (``PlatformError``, ``AwsError``, ``DatabaseActionError``) with
``raise ... from exc``, so the classification walks the cause chain and judges by the innermost transport error it
recognises, never by message text. Anything unrecognised is a refusal, as every failure was before.

Pure: no I/O. httpx is always installed; botocore only with the AWS extra, so its types are looked up lazily.
"""

from __future__ import annotations

import errno
from collections.abc import Iterator
from enum import StrEnum

import httpx


class CallOutcome(StrEnum):
    NOT_SENT = "not_sent"  # the request never reached the platform: certainly not applied
    REFUSED = "refused"  # the platform answered without success: not applied, on its word
    ANSWER_LOST = "answer_lost"  # sent, but the answer was lost: maybe applied


#: HTTP statuses with which a gateway or the platform gives up on a request it may already have passed on or begun:
#: 500 (failed while processing), 502 (the upstream answered nonsense or dropped), 504 (the upstream did not answer).
#: 503 is not here: "unavailable" is a refusal to take the request on.
MAYBE_APPLIED_STATUSES = frozenset({500, 502, 504})

# httpx: failures before the request left (no connection, a bad URL, a pool that never gave a connection).
_HTTPX_NOT_SENT: tuple[type[Exception], ...] = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout,
                                                httpx.UnsupportedProtocol, httpx.LocalProtocolError, httpx.ProxyError,
                                                httpx.InvalidURL)
# Everything else a transport can raise happens once the request is (or may be) on the wire: read/write timeouts,
# read/write errors, the server closing without an answer, an answer that could not be decoded.
_HTTPX_ANSWER_LOST: tuple[type[Exception], ...] = (httpx.TransportError, httpx.DecodingError)

# Sockets: connection-time errors mean nothing was sent; a reset or a timeout once connected may follow a request.
_OS_NOT_SENT_ERRNOS = frozenset({errno.ECONNREFUSED, errno.ENETUNREACH, errno.EHOSTUNREACH, errno.EADDRNOTAVAIL})

# PostgreSQL SQLSTATEs (class 57, operator intervention) that stop a statement the server had begun: a cancelled
# pg_terminate_backend may already have signalled its target, a cancelled CREATE INDEX CONCURRENTLY leaves an index.
# 57P03 ("cannot connect now") is refused at connect, before any statement.
_SQLSTATE_NOT_SENT = frozenset({"57P03"})


def classify(exc: BaseException) -> CallOutcome:
    """What ``exc``, raised by a lever call, says about whether the platform changed (see the module doc)."""
    for link in _chain(exc):
        judged = _judge(link)
        if judged is not None:
            return judged
    return CallOutcome.REFUSED


def _chain(exc: BaseException) -> Iterator[BaseException]:
    """``exc`` and what it was raised from, outermost first, each once (a cycle cannot loop forever)."""
    seen: set[int] = set()
    link: BaseException | None = exc
    while link is not None and id(link) not in seen:
        seen.add(id(link))
        yield link
        link = link.__cause__ or (None if link.__suppress_context__ else link.__context__)


def _judge(link: BaseException) -> CallOutcome | None:
    """The outcome this one exception establishes, or None when it is only a wrapper (judge its cause)."""
    for judge in (_judge_httpx, _judge_botocore, _judge_database, _judge_socket, _judge_status):
        judged = judge(link)
        if judged is not None:
            return judged
    return None


def _judge_httpx(link: BaseException) -> CallOutcome | None:
    if isinstance(link, _HTTPX_NOT_SENT):
        return CallOutcome.NOT_SENT
    if isinstance(link, _HTTPX_ANSWER_LOST):
        return CallOutcome.ANSWER_LOST
    if isinstance(link, httpx.HTTPStatusError):
        return _by_status(link.response.status_code)
    return None


def _judge_botocore(link: BaseException) -> CallOutcome | None:
    try:
        from botocore import exceptions as boto
    except ImportError:  # pragma: no cover - the AWS extra is not installed: no botocore error can occur
        return None
    if isinstance(link, boto.ClientError):
        status = int(link.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0)
        return _by_status(status)
    if isinstance(link, boto.ConnectionError):  # endpoint unreachable, connect timeout, proxy, TLS handshake
        return CallOutcome.NOT_SENT
    if isinstance(link, boto.HTTPClientError | boto.IncompleteReadError):  # read timeout, connection closed
        return CallOutcome.ANSWER_LOST
    if isinstance(link, boto.BotoCoreError):  # no credentials, bad parameters, no region: built, never sent
        return CallOutcome.NOT_SENT
    return None


def _judge_database(link: BaseException) -> CallOutcome | None:
    """SQLAlchemy's DBAPIError (duck-typed: no SQLAlchemy import here) around the driver's error."""
    if not hasattr(link, "connection_invalidated") or not hasattr(link, "orig"):
        return None
    if link.connection_invalidated:  # the connection broke during the statement
        return CallOutcome.ANSWER_LOST
    orig = link.orig
    sqlstate = getattr(orig, "sqlstate", None) or getattr(orig, "pgcode", None)
    if sqlstate is None:  # the driver failed before the server said anything: the connection was never made
        return CallOutcome.NOT_SENT
    if sqlstate in _SQLSTATE_NOT_SENT:
        return CallOutcome.NOT_SENT
    if str(sqlstate).startswith("57"):
        return CallOutcome.ANSWER_LOST
    return CallOutcome.REFUSED


def _judge_socket(link: BaseException) -> CallOutcome | None:
    if isinstance(link, TimeoutError):  # also asyncio's: a bounded exchange that ran out once started
        return CallOutcome.ANSWER_LOST
    if isinstance(link, ConnectionRefusedError) or (isinstance(link, OSError) and link.errno in _OS_NOT_SENT_ERRNOS):
        return CallOutcome.NOT_SENT
    if isinstance(link, OSError) and type(link).__module__ == "socket":  # gaierror, herror: the name never resolved
        return CallOutcome.NOT_SENT
    if isinstance(link, ConnectionError | EOFError):  # reset, aborted, broken pipe, asyncio's IncompleteReadError
        return CallOutcome.ANSWER_LOST
    return None


def _judge_status(link: BaseException) -> CallOutcome | None:
    """An adapter's error for an HTTP answer it received (``PlatformError(status=...)``)."""
    status = getattr(link, "status", None)
    return _by_status(status) if isinstance(status, int) and not isinstance(status, bool) else None


def _by_status(status: int) -> CallOutcome:
    return CallOutcome.ANSWER_LOST if status in MAYBE_APPLIED_STATUSES else CallOutcome.REFUSED


def describe(exc: BaseException) -> str:
    """``Type: message``, as the ledger has always written a failed call."""
    return f"{type(exc).__name__}: {exc}"
