"""Migrations: apply on an empty database, are idempotent, downgrade cleanly, and agree with the ORM."""

from __future__ import annotations

import tomllib
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from fnmatch import fnmatch
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect
from sqlalchemy.engine import make_url

from remediation.store import Store, downgrade, upgrade
from remediation.store.engine import make_engine
from remediation.store.migrate import MIGRATIONS_DIR, current, head, make_config
from remediation.store.tables import Base

TABLES = {"incidents", "actions", "approvals", "timeline", "alerts", "rate_budgets", "app_log_lines",
          "approval_proofs", "pending_approvals", "notify_pages", "notify_statuspage_incidents", "flow_runs"}
REPO_ROOT = Path(__file__).resolve().parents[2]


def _tables(url: str) -> set[str]:
    engine = make_engine(url)
    try:
        return set(inspect(engine).get_table_names())
    finally:
        engine.dispose()


def test_upgrade_on_empty_database_is_idempotent(db_url: str) -> None:
    assert current(db_url) is None
    upgrade(db_url)
    assert current(db_url) == head() == "0009"
    assert _tables(db_url) == TABLES | {"alembic_version"}
    upgrade(db_url)  # second run: nothing to do, no error
    assert current(db_url) == head()


def test_store_migrate_creates_sqlite_parent_directory(db_url: str, make_store: Callable[[], Store]) -> None:
    store = make_store()
    database = make_url(db_url).database
    if make_url(db_url).get_backend_name() == "sqlite":
        assert database is not None
        assert not Path(database).parent.exists()
    store.migrate()
    store.migrate()
    if make_url(db_url).get_backend_name() == "sqlite":
        assert database is not None
        assert Path(database).is_file()
    assert current(db_url) == head()


def test_downgrade_to_base_and_back(db_url: str) -> None:
    upgrade(db_url)
    downgrade(db_url, "base")
    assert current(db_url) is None
    assert _tables(db_url) - {"alembic_version"} == set()
    upgrade(db_url)
    assert _tables(db_url) == TABLES | {"alembic_version"}


def test_orm_and_migrations_agree(db_url: str) -> None:
    """The equivalent of ``alembic check``: autogenerate finds nothing to do after upgrading to head."""
    upgrade(db_url)
    engine = make_engine(db_url)
    try:
        with engine.connect() as conn:
            context = MigrationContext.configure(conn, opts={"compare_type": True})
            diff = compare_metadata(context, Base.metadata)
    finally:
        engine.dispose()
    assert diff == []


def test_concurrent_upgrades_serialise(db_url: str) -> None:
    """Several workers starting at once all succeed; the schema is created exactly once."""
    with ThreadPoolExecutor(max_workers=4) as pool:
        list(pool.map(lambda _: upgrade(db_url), range(4)))
    assert current(db_url) == head()


def test_upgrade_ignores_cwd_and_any_alembic_ini(db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Runs from anywhere; a stray (broken) alembic.ini in the working directory is not read."""
    workdir = tmp_path / "elsewhere"
    workdir.mkdir()
    (workdir / "alembic.ini").write_text("[alembic]\nscript_location = /nonexistent\n")
    monkeypatch.chdir(workdir)
    upgrade(db_url)
    assert current(db_url) == head()


def test_config_is_built_in_code() -> None:
    cfg = make_config()
    assert cfg.config_file_name is None
    assert Path(cfg.get_main_option("script_location") or "") == MIGRATIONS_DIR


def test_runtime_migration_files_are_package_data() -> None:
    """Everything ``upgrade`` needs at runtime is listed in pyproject's package-data (wheel installs)."""
    pyproject = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())
    patterns = pyproject["tool"]["setuptools"]["package-data"]["remediation"]
    package_root = REPO_ROOT / "remediation"
    runtime_files = [MIGRATIONS_DIR / "env.py", *sorted((MIGRATIONS_DIR / "versions").glob("*.py"))]
    assert len(runtime_files) >= 2
    for path in runtime_files:
        relative = path.relative_to(package_root).as_posix()
        assert any(fnmatch(relative, pattern) for pattern in patterns), relative
