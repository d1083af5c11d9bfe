"""Prefect databases already migrated, for the many Prefect servers the suite starts.

A Prefect server's first start on a new database runs ~100 migrations: ~5 s of CPU on SQLite, ~2 s on PostgreSQL,
repeated by every test that starts one (the session's API, each demo, each ``serve``). One migrated database per
test run (shared by the xdist workers, made by whichever asks first) is copied instead: a file copy for SQLite,
``CREATE DATABASE ... TEMPLATE`` for PostgreSQL. The server still runs its migrations on start; they find nothing
to do. What the tests exercise does not change: the same Prefect, the same schema, an empty database.

The run's shared directory holds the SQLite template and the name of the PostgreSQL one; the controlling pytest
process drops the PostgreSQL template when the run ends (``drop_run_templates``). The SQLite template is also kept in
pytest's cache directory (``.pytest_cache``), named by Prefect's version and its migrations, so the next run (``make
test``'s second part, or tomorrow's) copies it instead of migrating again.
"""

from __future__ import annotations

import fcntl
import hashlib
import importlib.metadata
import importlib.util
import json
import os
import shutil
import subprocess
import sys
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from tests.helpers.services import pg_admin_url

STATE_FILE = "prefect-templates.json"

#: This process's pytest temporary-directory factory and cache folder (set by tests/conftest.py's
#: ``pytest_configure``; no cache folder under ``-p no:cacheprovider``).
_factory: pytest.TempPathFactory | None = None
_cache_dir: Path | None = None


def configure(factory: pytest.TempPathFactory, cache_dir: Path | None = None) -> None:
    global _factory, _cache_dir
    _factory, _cache_dir = factory, cache_dir


def run_root() -> Path:
    """The directory every process of this test run shares: the xdist workers' common parent, else basetemp."""
    if _factory is None:
        raise RuntimeError("prefect_templates.configure() was not called (tests/conftest.py does it)")
    basetemp = _factory.getbasetemp()
    return basetemp.parent if os.environ.get("PYTEST_XDIST_WORKER") else basetemp


@contextmanager
def _locked(root: Path) -> Iterator[dict[str, str]]:
    """The run's template state, under an exclusive lock across processes; changes are saved on the way out."""
    root.mkdir(parents=True, exist_ok=True)
    with (root / ".prefect-templates.lock").open("a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        path = root / STATE_FILE
        state: dict[str, str] = json.loads(path.read_text()) if path.exists() else {}
        try:
            yield state
        finally:  # also after a failure: a database created before it must still be dropped at the end
            path.write_text(json.dumps(state))


def _migrate(database_url: str) -> None:
    """Bring ``database_url`` to Prefect's newest schema, in a child process (this one's Prefect settings stay)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    env.update({"PREFECT_SERVER_DATABASE_CONNECTION_URL": database_url, "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
                "PREFECT_HOME": str(Path(os.environ.get("TMPDIR", "/tmp")) / f"prefect-migrate-{uuid.uuid4().hex}")})
    code = ("import asyncio\n"
            "from prefect.server.database import provide_database_interface\n"
            "asyncio.run(provide_database_interface().create_db())\n")
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300,
                          check=False)
    shutil.rmtree(env["PREFECT_HOME"], ignore_errors=True)
    if done.returncode != 0:
        raise RuntimeError(f"migrating a template Prefect database failed:\n{done.stderr[-3000:]}")


def schema_key() -> str:
    """What a migrated Prefect database depends on: Prefect's version and the names of its SQLite migrations."""
    spec = importlib.util.find_spec("prefect")
    if spec is None or spec.origin is None:
        raise RuntimeError("Prefect is not installed")
    versions = Path(spec.origin).parent / "server" / "database" / "_migrations" / "versions" / "sqlite"
    names = "\n".join(sorted(path.name for path in versions.glob("*.py")))
    return f"{importlib.metadata.version('prefect')}-{hashlib.sha256(names.encode()).hexdigest()[:12]}"


def sqlite_template() -> Path:
    """The run's migrated, empty SQLite Prefect database (made on first use, from pytest's cache when it has one)."""
    root = run_root()
    with _locked(root) as state:
        if "sqlite" not in state or not Path(state["sqlite"]).exists():
            made = root / "prefect-template.db"
            partial = made.with_suffix(".partial")
            partial.unlink(missing_ok=True)
            cached = _cache_dir / f"prefect-{schema_key()}.db" if _cache_dir is not None else None
            if cached is not None and cached.exists():
                shutil.copyfile(cached, partial)
            else:
                _migrate(f"sqlite+aiosqlite:///{partial}")
                if cached is not None:  # whole or not at all: another run may be reading the cache
                    writing = cached.with_suffix(f".{os.getpid()}.partial")
                    shutil.copyfile(partial, writing)
                    writing.replace(cached)
            partial.replace(made)
            state["sqlite"] = str(made)
        return Path(state["sqlite"])


def seed_sqlite(database: Path) -> Path:
    """Put a migrated, empty Prefect database at ``database`` (a new file only: an existing one is left alone)."""
    if not database.exists():
        database.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(sqlite_template(), database)
    return database


def seed_prefect_home(prefect_home: Path) -> Path:
    """``prefect_home`` with a migrated ``prefect.db``: where Prefect's temporary server and ``serve``'s local one
    (``REMEDIATE_HOME/prefect``) keep their database."""
    seed_sqlite(prefect_home / "prefect.db")
    return prefect_home


def postgres_template() -> str:
    """The name of the run's migrated, empty PostgreSQL database to clone with ``CREATE DATABASE ... TEMPLATE``."""
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    admin_url = pg_admin_url()
    with _locked(run_root()) as state:
        if state.get("postgres_ready") == state.get("postgres") is not None:
            return state["postgres"]
        admin = create_engine(admin_url, isolation_level="AUTOCOMMIT", connect_args={"connect_timeout": 3})
        try:
            with admin.connect() as conn:
                if stale := state.get("postgres"):  # an earlier attempt's half-migrated one
                    conn.execute(text(f'DROP DATABASE IF EXISTS "{stale}" WITH (FORCE)'))
                name = f"remediate_prefect_tpl_{uuid.uuid4().hex[:10]}"
                conn.execute(text(f'CREATE DATABASE "{name}"'))
                state["postgres"] = name  # recorded before migrating: the run's end drops it even half-made
        finally:
            admin.dispose()
        _, _, rest = make_url(admin_url).set(database=name).render_as_string(hide_password=False).partition("://")
        _migrate(f"postgresql+asyncpg://{rest}")
        state["postgres_ready"] = name
        return name


def drop_run_templates() -> None:
    """At the run's end, in the controlling process: drop the PostgreSQL template (the SQLite one goes with
    pytest's temporary directories)."""
    path = run_root() / STATE_FILE
    if not path.exists():
        return
    name = json.loads(path.read_text()).get("postgres")
    if not name:
        return
    from sqlalchemy import create_engine, text

    admin = create_engine(pg_admin_url(), isolation_level="AUTOCOMMIT", connect_args={"connect_timeout": 3})
    try:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    except Exception as exc:  # a leftover template must not fail the run
        print(f"could not drop the Prefect template database {name}: {exc}", file=sys.stderr)
    finally:
        admin.dispose()
