"""sentry-sdk starts only with a DSN, and flushing when it is off is harmless."""

from __future__ import annotations

import pytest
import sentry_sdk

from remediation.observability import flush_sentry, init_sentry
from remediation.settings import Settings


def test_no_dsn_or_an_empty_dsn_leaves_sentry_off() -> None:
    assert init_sentry(Settings(sentry_dsn=None)) is False
    assert init_sentry(Settings(sentry_dsn="  ")) is False
    assert not sentry_sdk.get_client().is_active()
    flush_sentry()  # a no-op, not an error


def test_the_conventional_sentry_dsn_variable_is_honoured(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SENTRY_DSN", "http://key@127.0.0.1:9/1")
    assert Settings().sentry.dsn is not None
    monkeypatch.setenv("REMEDIATE_SENTRY_DSN", "http://other@127.0.0.1:9/2")
    dsn = Settings().sentry.dsn
    assert dsn is not None and dsn.get_secret_value().endswith("/2")  # ours wins over the generic one
