"""Stand-ins for the two reads every runbook makes when nothing is configured to answer them.

Logs and the error tracker are read by every runbook; absent, they answer each read with a PlatformError saying
what is missing, so the runbook records that evidence as *unavailable* (never as empty-and-healthy).
"""

from __future__ import annotations

from datetime import datetime

from remediation.providers.platform import ErrorIssue, LogLine, PlatformError


class NoLogs:
    """:class:`~remediation.providers.capabilities.Logs` with no source configured."""

    def __init__(self, why: str) -> None:
        self.why = why

    async def lines(self, since: datetime | None = None, limit: int = 500) -> list[LogLine]:
        raise PlatformError(f"no log source configured ({self.why}): the app's logs are not read")


class NoErrors:
    """:class:`~remediation.providers.capabilities.Errors` with no error tracker configured."""

    def __init__(self, why: str) -> None:
        self.why = why

    async def issues(self, since: datetime | None = None) -> list[ErrorIssue]:
        raise PlatformError(f"no error tracker configured ({self.why})")
