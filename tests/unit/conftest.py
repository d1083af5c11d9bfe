"""Fixtures shared by the unit tests."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest

#: Writes a remediate.toml with the given text and points REMEDIATE_CONFIG at it; returns its path.
Write = Callable[[str], Path]


@pytest.fixture
def config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Write:
    """A fresh remediate.toml per call, no REMEDIATE_* variable from the caller's shell, and tmp_path as the working
    directory (so no ./remediate.toml of the checkout is read)."""

    def write(text: str) -> Path:
        path = tmp_path / f"remediate-{len(list(tmp_path.iterdir()))}.toml"
        path.write_text(text)
        monkeypatch.setenv("REMEDIATE_CONFIG", str(path))
        return path

    for name in [n for n in os.environ if n.startswith("REMEDIATE_")]:
        monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)
    return write
