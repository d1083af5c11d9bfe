"""Intake settings come from REMEDIATE_* like the rest, and secrets never show in a repr."""

from __future__ import annotations

import pytest

from remediation.models import Mode
from remediation.settings import Settings


def test_intake_settings_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REMEDIATE_INTAKE_TOKEN", "t0k3n")
    monkeypatch.setenv("REMEDIATE_INTAKE_BASIC_USER", "am")
    monkeypatch.setenv("REMEDIATE_INTAKE_BASIC_PASSWORD", "pw")
    monkeypatch.setenv("REMEDIATE_SENTRY_CLIENT_SECRET", "s3cr3t")
    monkeypatch.setenv("REMEDIATE_INTAKE_MAX_BODY_BYTES", "2048")
    monkeypatch.setenv("REMEDIATE_SENTRY_MAX_AGE_S", "60")
    monkeypatch.setenv("REMEDIATE_REOPEN_COOLDOWN_S", "0")
    monkeypatch.setenv("REMEDIATE_INTAKE_MODE", "dry_run")
    settings = Settings()
    assert settings.intake_token is not None and settings.intake_token.get_secret_value() == "t0k3n"
    assert settings.intake_basic_user == "am"
    assert settings.sentry.client_secret is not None and settings.sentry.client_secret.get_secret_value() == "s3cr3t"
    assert (settings.intake_max_body_bytes, settings.sentry.max_age_s, settings.reopen_cooldown_s) == (2048, 60, 0)
    assert settings.intake_mode is Mode.DRY_RUN
    assert "t0k3n" not in repr(settings) and "s3cr3t" not in repr(settings) and "pw'" not in repr(settings)


def test_intake_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("INTAKE_TOKEN", "INTAKE_BASIC_USER", "INTAKE_BASIC_PASSWORD", "SENTRY_CLIENT_SECRET", "INTAKE_MODE"):
        monkeypatch.delenv(f"REMEDIATE_{name}", raising=False)
    settings = Settings()
    assert settings.intake_token is None and settings.sentry.client_secret is None
    assert settings.intake_max_body_bytes == 1_000_000 and settings.sentry.max_age_s == 300
    assert settings.reopen_cooldown_s == 600 and settings.intake_mode is Mode.APPROVE


def test_read_timeout_defaults_to_10_s_and_comes_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("REMEDIATE_INTAKE_READ_TIMEOUT_S", raising=False)
    assert Settings().intake_read_timeout_s == 10.0
    monkeypatch.setenv("REMEDIATE_INTAKE_READ_TIMEOUT_S", "2.5")
    assert Settings().intake_read_timeout_s == 2.5
