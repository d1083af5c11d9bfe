"""Which lever failures mean "certainly not applied" and which "maybe applied", from a table of the exceptions the
adapters really raise, wrapped the way they really wrap them (``raise PlatformError(...) from exc``)."""

from __future__ import annotations

import asyncio
import socket

import httpx
import psycopg
import psycopg.errors
import pytest
import sqlalchemy.exc
from botocore.exceptions import (
    ClientError,
    ConnectionClosedError,
    ConnectTimeoutError,
    EndpointConnectionError,
    NoCredentialsError,
    ReadTimeoutError,
)

from remediation.call_outcome import CallOutcome, classify
from remediation.providers.aws.session import translate
from remediation.providers.clamd import ClamdError
from remediation.providers.database import DatabaseActionError
from remediation.providers.platform import PlatformError

NOT_SENT, REFUSED, LOST = CallOutcome.NOT_SENT, CallOutcome.REFUSED, CallOutcome.ANSWER_LOST
REQUEST = httpx.Request("POST", "http://platform/_sim/maintenance")


def wrapped(outer: type[Exception], inner: BaseException) -> Exception:
    """``outer`` raised from ``inner``, as an adapter's ``except ... as exc: raise Outer(...) from exc`` leaves it."""
    try:
        try:
            raise inner
        except BaseException as exc:
            raise outer(f"the call failed: {exc}") from exc
    except Exception as raised:
        return raised


def aws(inner: Exception) -> Exception:
    """What ``AwsSession.call`` raises: the botocore error translated, chained to it."""
    try:
        try:
            raise inner
        except Exception as exc:
            raise translate("ssm", "put_parameter", exc) from exc
    except Exception as raised:
        return raised


def client_error(status: int, code: str) -> ClientError:
    return ClientError({"Error": {"Code": code, "Message": "m"}, "ResponseMetadata": {"HTTPStatusCode": status}},
                       "PutParameter")


def database(inner: Exception, *, invalidated: bool = False) -> Exception:
    """What ``PostgresInspector._acting`` raises: SQLAlchemy's wrapper of the driver's error, wrapped again."""
    return wrapped(DatabaseActionError,
                   sqlalchemy.exc.OperationalError("SELECT 1", {}, inner, connection_invalidated=invalidated))


TABLE: list[tuple[str, BaseException, CallOutcome]] = [
    # httpx, under the simulator's and the SaaS clients' PlatformError
    ("connection refused", wrapped(PlatformError, httpx.ConnectError("refused", request=REQUEST)), NOT_SENT),
    ("connect timeout", wrapped(PlatformError, httpx.ConnectTimeout("slow connect", request=REQUEST)), NOT_SENT),
    ("no pooled connection", wrapped(PlatformError, httpx.PoolTimeout("pool", request=REQUEST)), NOT_SENT),
    ("read timeout", wrapped(PlatformError, httpx.ReadTimeout("slow answer", request=REQUEST)), LOST),
    ("write timeout", wrapped(PlatformError, httpx.WriteTimeout("slow send", request=REQUEST)), LOST),
    ("connection reset while reading", wrapped(PlatformError, httpx.ReadError("reset", request=REQUEST)), LOST),
    ("server closed without answering",
     wrapped(PlatformError, httpx.RemoteProtocolError("Server disconnected", request=REQUEST)), LOST),
    ("answer not decodable", wrapped(PlatformError, httpx.DecodingError("gzip", request=REQUEST)), LOST),
    # an HTTP answer the adapter turned into an error: refusals, and gateways that lost the upstream's answer
    ("422 validation error", PlatformError("HTTP 422", status=422), REFUSED),
    ("404 unknown release", PlatformError("HTTP 404", status=404), REFUSED),
    ("503 unavailable", PlatformError("HTTP 503", status=503), REFUSED),
    ("500 failed while processing", PlatformError("HTTP 500", status=500), LOST),
    ("502 bad gateway", PlatformError("HTTP 502", status=502), LOST),
    ("504 gateway timeout", PlatformError("HTTP 504", status=504), LOST),
    # botocore, under AwsError
    ("AWS endpoint unreachable", aws(EndpointConnectionError(endpoint_url="https://ssm")), NOT_SENT),
    ("AWS connect timeout", aws(ConnectTimeoutError(endpoint_url="https://ssm")), NOT_SENT),
    ("AWS no credentials", aws(NoCredentialsError()), NOT_SENT),
    ("AWS read timeout", aws(ReadTimeoutError(endpoint_url="https://ssm")), LOST),
    ("AWS connection closed", aws(ConnectionClosedError(endpoint_url="https://ssm")), LOST),
    ("AWS refused the call", aws(client_error(400, "ValidationException")), REFUSED),
    ("AWS internal error", aws(client_error(500, "InternalServerError")), LOST),
    # PostgreSQL through SQLAlchemy, under DatabaseActionError
    ("database refused the connection", database(psycopg.OperationalError("connection refused")), NOT_SENT),
    ("database not accepting connections yet", database(psycopg.errors.CannotConnectNow("starting up")), NOT_SENT),
    ("connection lost during the statement",
     database(psycopg.OperationalError("server closed the connection"), invalidated=True), LOST),
    ("statement cancelled by its timeout", database(psycopg.errors.QueryCanceled("canceling statement")), LOST),
    ("database rejected the statement", database(psycopg.errors.UndefinedTable("no such table")), REFUSED),
    # sockets (clamd)
    ("clamd refused", wrapped(ClamdError, ConnectionRefusedError(111, "Connection refused")), NOT_SENT),
    ("clamd name does not resolve", wrapped(ClamdError, socket.gaierror(-2, "Name or service not known")), NOT_SENT),
    ("clamd timed out", wrapped(ClamdError, TimeoutError()), LOST),
    ("clamd reset", wrapped(ClamdError, ConnectionResetError(104, "reset")), LOST),
    ("clamd closed mid-answer", wrapped(ClamdError, asyncio.IncompleteReadError(b"RELO", 10)), LOST),
    # the lever answered, and the answer says no
    ("a lever's own refusal", RuntimeError("edge API said no"), REFUSED),
    ("a post-condition on the answer", RuntimeError("rollback to dpl_a left dpl_b current"), REFUSED),
]


@pytest.mark.parametrize(("case", "exc", "expected"), [pytest.param(*row, id=row[0]) for row in TABLE])
def test_each_failure_is_classified_as_not_sent_refused_or_answer_lost(case: str, exc: BaseException,
                                                                       expected: CallOutcome) -> None:
    assert classify(exc) is expected


def test_a_transport_error_raised_while_handling_another_error_is_found_through_the_context() -> None:
    try:
        try:
            raise httpx.ReadTimeout("slow", request=REQUEST)
        except httpx.ReadTimeout:
            raise PlatformError("no answer")  # noqa: B904 - the implicit context is what is tested
    except PlatformError as exc:
        assert classify(exc) is LOST


def test_a_cause_suppressed_with_from_none_is_not_looked_into() -> None:
    try:
        try:
            raise httpx.ReadTimeout("slow", request=REQUEST)
        except httpx.ReadTimeout:
            raise PlatformError("said no") from None
    except PlatformError as exc:
        assert classify(exc) is REFUSED
