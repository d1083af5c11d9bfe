"""Run the store's Alembic migrations from code.

The Alembic ``Config`` is built here rather than read from an ``alembic.ini``: the migrations ship inside
the package, so this works from an installed wheel and from any working directory, and nothing at
runtime depends on where the process was started.

Every run happens in one transaction on a connection made by :func:`~remediation.store.engine.make_engine`
(transactional DDL on both backends: a failed revision leaves nothing half-applied) and is serialised
against concurrent runners: SQLite via ``BEGIN IMMEDIATE``, PostgreSQL via a transaction-scoped advisory
lock. So two workers starting at once can both call :func:`upgrade`; the second finds the schema at head.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, text
from sqlalchemy.engine import URL

from remediation.store.engine import is_sqlite_memory, make_engine, normalize_url, writer

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"
#: Arbitrary constant key for ``pg_advisory_xact_lock`` ("remediat" as ASCII, fits a signed bigint).
_PG_LOCK_KEY = 0x72656D6564696174


def make_config(url: str | URL | None = None) -> Config:
    """An Alembic config pointing at the packaged migrations (and at ``url`` for CLI-style use)."""
    cfg = Config()
    # ConfigParser interpolation: a literal '%' in a path or password must be doubled.
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR).replace("%", "%%"))
    cfg.set_main_option("path_separator", "os")
    if url is not None:
        rendered = normalize_url(url).render_as_string(hide_password=False)
        cfg.set_main_option("sqlalchemy.url", rendered.replace("%", "%%"))
    return cfg


def head() -> str:
    """The revision a fully migrated database is at."""
    revision = ScriptDirectory.from_config(make_config()).get_current_head()
    if revision is None:
        raise RuntimeError(f"no migrations found in {MIGRATIONS_DIR}")
    return revision


def upgrade(url: str | URL | Engine, revision: str = "head") -> None:
    """Upgrade the database at ``url`` (or behind an engine) to ``revision``; a no-op when already there.

    For a SQLite file the parent directory is created first.
    """
    if not isinstance(url, Engine):
        ensure_sqlite_parent(url)
    _run(url, lambda cfg: command.upgrade(cfg, revision))


def downgrade(url: str | URL | Engine, revision: str = "base") -> None:
    """Downgrade to ``revision`` (default: drop everything the migrations created)."""
    _run(url, lambda cfg: command.downgrade(cfg, revision))


def current(url: str | URL | Engine) -> str | None:
    """The revision the database is at, or None for an empty (never migrated) database.

    Read-only: a SQLite file that does not exist yet is reported as None, not created.
    """
    if not isinstance(url, Engine) and (path := _sqlite_file(url)) is not None and not path.exists():
        return None
    engine, owned = _engine_for(url)
    try:
        with engine.connect() as conn:
            return MigrationContext.configure(conn).get_current_revision()
    finally:
        if owned:
            engine.dispose()


def ensure_sqlite_parent(url: str | URL) -> None:
    """Create the directory a SQLite database file goes in (SQLite creates the file, not the path)."""
    path = _sqlite_file(url)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)


def _sqlite_file(url: str | URL) -> Path | None:
    """The file behind a SQLite URL; None for other backends, in-memory and URI-style (``file:``) names."""
    parsed = normalize_url(url)
    if parsed.get_backend_name() != "sqlite" or is_sqlite_memory(parsed) or not parsed.database:
        return None
    if parsed.database.startswith("file:"):
        return None
    return Path(parsed.database)


def _engine_for(url: str | URL | Engine) -> tuple[Engine, bool]:
    if isinstance(url, Engine):
        return url, False
    return make_engine(url), True


def _run(url: str | URL | Engine, step: Callable[[Config], None]) -> None:
    engine, owned = _engine_for(url)
    try:
        with writer(engine).begin() as conn:
            if conn.dialect.name == "postgresql":
                conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _PG_LOCK_KEY})
            cfg = make_config()
            cfg.attributes["connection"] = conn
            step(cfg)
    finally:
        if owned:
            engine.dispose()
