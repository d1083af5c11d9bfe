"""sentry-sdk in our own processes (the receiver, the warm executor, served runs).

Initialised only when a DSN is configured (``REMEDIATE_SENTRY_DSN`` or the conventional ``SENTRY_DSN``); an
empty DSN leaves the SDK disabled. Events wait in the SDK's background transport, so a process that exits on
SIGTERM without ``flush`` loses them (docs/reference/integrations.md §2.3: 0 of 20 without, 20 of 20 with): every exit
path of ``remediate serve`` calls :func:`flush_sentry`.
"""

from __future__ import annotations

import logging
import socket
from importlib import metadata

from remediation.settings import Settings

log = logging.getLogger("remediation.observability")


def _release() -> str | None:
    try:
        return f"kamkmserve-remediation@{metadata.version('kamkmserve-remediation')}"
    except metadata.PackageNotFoundError:
        return None


def init_sentry(settings: Settings) -> bool:
    """Start sentry-sdk when a DSN is configured; True when it is on. Safe to call more than once."""
    import sentry_sdk

    dsn = settings.sentry.dsn.get_secret_value().strip() if settings.sentry.dsn else ""
    if not dsn:
        return False
    if sentry_sdk.get_client().is_active():
        return True
    sentry_sdk.init(dsn=dsn, environment=settings.sentry.environment, release=_release(),
                    server_name=socket.gethostname(), traces_sample_rate=0.0, shutdown_timeout=2)
    log.info("sentry-sdk enabled (environment %s)", settings.sentry.environment)
    return True


def flush_sentry(timeout_s: float = 2.0) -> None:
    """Send what the SDK still holds; a no-op when it is off."""
    import sentry_sdk

    if sentry_sdk.get_client().is_active():
        sentry_sdk.flush(timeout=timeout_s)
        log.info("sentry-sdk flushed")
