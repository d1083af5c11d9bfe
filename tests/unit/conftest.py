"""Fixtures shared by the unit tests."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest

#: Writes a remediate.toml with the given text and points REMEDIATE_CONFIG at it; returns its path.
Write = Callable[[str], Path]


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> pytest.MonkeyPatch:
    """No REMEDIATE_* variable (nor SENTRY_DSN) from the caller's shell, and tmp_path as the working directory (so no
    ./remediate.toml of the checkout is read)."""
    for name in [n for n in os.environ if n.startswith("REMEDIATE_") or n == "SENTRY_DSN"]:
        monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)
    return monkeypatch


@pytest.fixture
def config(tmp_path: Path, clean_env: pytest.MonkeyPatch) -> Write:
    """A fresh remediate.toml per call, pointed at by REMEDIATE_CONFIG, in a clean environment (``clean_env``)."""

    def write(text: str) -> Path:
        path = tmp_path / f"remediate-{len(list(tmp_path.iterdir()))}.toml"
        path.write_text(text)
        clean_env.setenv("REMEDIATE_CONFIG", str(path))
        return path

    return write
