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
    assert settings.platform is None, "no lever provider unless one is chosen: nothing mutates by default"


def test_the_simulator_platform_needs_its_own_url_never_the_apps(monkeypatch: pytest.MonkeyPatch) -> None:
    """REMEDIATE_PLATFORM=sim without REMEDIATE_SIM_URL is a configuration error: /_sim requests never go to the
    app's URL by default."""
    monkeypatch.setenv("REMEDIATE_APP_URL", "https://kamkmserve.example.com")
    monkeypatch.setenv("REMEDIATE_PLATFORM", "sim")
    monkeypatch.delenv("REMEDIATE_SIM_URL", raising=False)
    with pytest.raises(ValueError, match="REMEDIATE_SIM_URL"):
        Settings()
    monkeypatch.setenv("REMEDIATE_SIM_URL", "http://127.0.0.1:3999")
    assert Settings().sim_url == "http://127.0.0.1:3999"


def test_environment_is_read_at_construction(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REMEDIATE_APPROVERS", " alice, bob ,,")
    monkeypatch.setenv("REMEDIATE_APP_URL", "http://app.example:3000/")
    monkeypatch.setenv("REMEDIATE_MODE", "auto")
    monkeypatch.setenv("REMEDIATE_DATABASE_URL", "postgresql+psycopg://u@h/db")
    settings = Settings()
    assert settings.approvers == ["alice", "bob"]
    assert settings.mode is Mode.AUTO
    assert settings.app_url == "http://app.example:3000/"
    assert settings.resolved_database_url == "postgresql+psycopg://u@h/db"


def test_a_budget_above_the_apps_own_limit_is_rejected(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REMEDIATE_METRICS_BUDGET_PER_MIN", "150")
    with pytest.raises(ValueError, match="100"):
        Settings()
