"""Settings come from REMEDIATE_* variables when built, with comma lists and safe defaults."""

from __future__ import annotations

import pytest

from remediation.models import Mode
from remediation.settings import Settings


def test_defaults_are_safe(monkeypatch: pytest.MonkeyPatch) -> None:
    for key in ("REMEDIATE_MODE", "REMEDIATE_APPROVERS", "REMEDIATE_PREAPPROVED"):
        monkeypatch.delenv(key, raising=False)
    settings = Settings()
    assert settings.mode is Mode.APPROVE
    assert settings.approvers == [] and settings.preapproved == []
    assert settings.metrics_budget_per_min <= 100


def test_environment_is_read_at_construction(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REMEDIATE_APPROVERS", " alice, bob ,,")
    monkeypatch.setenv("REMEDIATE_APP_URL", "http://app.example:3000/")
    monkeypatch.setenv("REMEDIATE_MODE", "auto")
    monkeypatch.setenv("REMEDIATE_DATABASE_URL", "postgresql+psycopg://u@h/db")
    settings = Settings()
    assert settings.approvers == ["alice", "bob"]
    assert settings.mode is Mode.AUTO
    assert settings.resolved_platform_url == "http://app.example:3000"
    assert settings.resolved_database_url == "postgresql+psycopg://u@h/db"


def test_a_budget_above_the_apps_own_limit_is_rejected(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REMEDIATE_METRICS_BUDGET_PER_MIN", "150")
    with pytest.raises(ValueError, match="100"):
        Settings()
