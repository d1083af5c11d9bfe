"""Keeping notification credentials out of messages and log lines.

A Slack incoming-webhook URL *is* its credential, and httpx logs every request's full URL at INFO
(``HTTP Request: POST https://hooks.slack.com/services/...``). Whoever turns the root logger up to INFO would
then write the webhook into every log file and into Prefect's run logs. So every channel registers its secrets
here when it is built, and a filter on httpx's loggers replaces them in the formatted message. The same
registry redacts failure messages before they reach a run's timeline.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable

REDACTED = "[redacted]"
_LOGGERS = ("httpx", "httpcore")
_secrets: set[str] = set()
_lock = threading.Lock()
_installed = False


class RedactingFilter(logging.Filter):
    """Rewrites a record's message with every registered secret replaced; never drops a record."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not _secrets:
            return True
        try:
            message = record.getMessage()
        except Exception:  # a malformed record is logging's problem, not ours
            return True
        cleaned = redact(message)
        if cleaned != message:
            record.msg, record.args = cleaned, None
        return True


def protect(secrets: Iterable[str | None]) -> None:
    """Register secrets (empty values are ignored) and make sure the log filter is installed."""
    global _installed
    with _lock:
        _secrets.update(s for s in secrets if s and len(s) >= 6)  # a 1-char "secret" would shred every line
        if not _installed:
            for name in _LOGGERS:
                logging.getLogger(name).addFilter(RedactingFilter())
            _installed = True


def redact(text: str) -> str:
    # Longest first, so a secret that contains another is replaced whole.
    with _lock:
        known = sorted(_secrets, key=len, reverse=True)
    for secret in known:
        text = text.replace(secret, REDACTED)
    return text
