"""AWS adapter tests: moto's dummy credentials in the environment (the adapters use the standard chain), and the
session's moto server for the tests that need it."""

from __future__ import annotations

import pytest

from tests.helpers.moto_server import DUMMY_CREDENTIALS, moto  # noqa: F401  (the fixture)


@pytest.fixture(autouse=True)
def dummy_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in DUMMY_CREDENTIALS.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
