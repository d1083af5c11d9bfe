"""One lazily built boto3 session for the AWS adapters: clients, adaptive retries, the emulator endpoint, errors.

Nothing here touches AWS (or even imports boto3) until the first call. Credentials come only from boto3's
standard chain (environment, shared profile, instance/task role): never a parameter, never in a message, never in
a log (botocore's DEBUG records carry the signed headers, session token included, so they are kept off).

boto3 is synchronous; every call runs in a worker thread so a flow's event loop keeps turning. Errors become
:class:`AwsError` (a :class:`~remediation.providers.platform.PlatformError`) with the service, the operation and
AWS's error code, in three families that callers treat differently:

* ``client``: AWS understood and refused (not found, validation, lock conflict); ``code`` says which.
* ``provider``: AWS or the emulator failed. moto answers an unimplemented call with an HTML 500, which JSON
  clients raise as a ``ClientError`` with code ``"500"`` and XML clients as ``ResponseParserError`` (not a
  ``ClientError`` at all); both land here (docs/reference/integrations.md §3.2).
* ``transport``: no answer (endpoint unreachable, timeout, no credentials).
"""

from __future__ import annotations

import asyncio
import logging
import threading
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from remediation.providers.platform import PlatformError

ErrorKind = Literal["client", "provider", "transport"]


class AwsConfig(BaseModel):
    """Where and how to call AWS. ``endpoint_url`` points every client at one emulator (moto) in tests."""

    model_config = ConfigDict(frozen=True)

    region: str | None = None
    endpoint_url: str | None = None
    max_attempts: int = Field(default=5, ge=1, le=20)
    connect_timeout_s: float = Field(default=5.0, gt=0)
    read_timeout_s: float = Field(default=20.0, gt=0)


class AwsError(PlatformError):
    """An AWS call failed. ``code`` is AWS's error code ("ParameterNotFound", "500", ...) when there was one."""

    def __init__(self, service: str, operation: str, kind: ErrorKind, code: str, message: str) -> None:
        self.service = service
        self.operation = operation
        self.kind: ErrorKind = kind
        self.code = code
        self.detail = message
        what = {"client": "refused", "provider": "failed on the provider side (not implemented there, or an "
                "internal error)", "transport": "got no answer"}[kind]
        super().__init__(f"AWS {service}.{operation} {what}: {code}: {message}"[:600])

    def is_(self, *codes: str) -> bool:
        return self.code in codes


def translate(service: str, operation: str, exc: Exception) -> AwsError:
    """Map a botocore exception to an :class:`AwsError` (anything else is returned as a transport error)."""
    from botocore.exceptions import BotoCoreError, ClientError
    from botocore.parsers import ResponseParserError

    if isinstance(exc, ClientError):
        error = exc.response.get("Error", {})
        code = str(error.get("Code") or "Unknown")
        status = int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0)
        kind: ErrorKind = "provider" if status >= 500 or code.isdigit() else "client"
        return AwsError(service, operation, kind, code, str(error.get("Message") or exc))
    if isinstance(exc, ResponseParserError):
        # The body was not AWS's XML/JSON: moto's HTML 500 for a call it does not implement, or a broken proxy.
        return AwsError(service, operation, "provider", "ResponseParserError", str(exc).splitlines()[0])
    if isinstance(exc, BotoCoreError):
        return AwsError(service, operation, "transport", type(exc).__name__, str(exc))
    return AwsError(service, operation, "transport", type(exc).__name__, str(exc))


def _quiet_botocore() -> None:
    """botocore's DEBUG records print each signed request, session token included: never let them through."""
    for name in ("botocore", "boto3", "s3transfer"):
        logger = logging.getLogger(name)
        if logger.getEffectiveLevel() < logging.INFO:
            logger.setLevel(logging.INFO)


class AwsSession:
    """Clients per service, built on first use and shared (boto3 clients are thread-safe; sessions are not)."""

    def __init__(self, config: AwsConfig | None = None) -> None:
        self.config = config or AwsConfig()
        self._lock = threading.Lock()
        self._session: Any = None
        self._clients: dict[tuple[str, bool], Any] = {}

    def client(self, service: str, *, retries: bool = True) -> Any:
        """The boto3 client; ``retries=False`` gives one attempt only, for calls that must never be repeated."""
        key = (service, retries)
        with self._lock:
            if key not in self._clients:
                import boto3
                from botocore.config import Config

                if self._session is None:
                    _quiet_botocore()
                    self._session = boto3.session.Session(region_name=self.config.region)
                config = Config(
                    # Adaptive: standard retries (throttling, 5xx, connection errors) plus a client-side rate
                    # limiter that backs off when AWS throttles, so a burst of actions does not make it worse.
                    # total_max_attempts counts the first try; botocore's "max_attempts" would add one to it.
                    retries={"mode": "adaptive", "total_max_attempts": self.config.max_attempts if retries else 1},
                    connect_timeout=self.config.connect_timeout_s,
                    read_timeout=self.config.read_timeout_s,
                    user_agent_extra="kamkmserve-remediation",
                )
                self._clients[key] = self._session.client(service, endpoint_url=self.config.endpoint_url,
                                                          config=config)
            return self._clients[key]

    async def call(self, service: str, operation: str, /, *, retries: bool = True,
                   **params: Any) -> dict[str, Any]:
        """``client.<operation>(**params)`` in a worker thread; botocore errors become :class:`AwsError`."""
        try:
            client = self.client(service, retries=retries)
            method = getattr(client, operation)
            result: dict[str, Any] = await asyncio.to_thread(method, **params)
        except AwsError:
            raise
        except Exception as exc:
            raise translate(service, operation, exc) from exc
        return result

    async def pages(self, service: str, operation: str, key: str, /, *, max_pages: int = 50,
                    **params: Any) -> list[Any]:
        """Every item under ``key`` across the paginator's pages (at most ``max_pages``: a bound, not a loop)."""

        def collect() -> list[Any]:
            paginator = self.client(service).get_paginator(operation)
            items: list[Any] = []
            for number, page in enumerate(paginator.paginate(**params)):
                if number >= max_pages:
                    break
                items.extend(page.get(key, []))
            return items

        try:
            return await asyncio.to_thread(collect)
        except Exception as exc:
            raise translate(service, operation, exc) from exc
