"""How the store connects: one place for the per-backend connection policy.

Both the :class:`~remediation.store.repository.Store` and the migration runner build their engines here,
so migrations run under exactly the transaction rules the application uses.

SQLite needs the most care because the ledger relies on "committed means durable and visible":

* Python's ``sqlite3`` (3.11, "legacy transaction control") does not emit BEGIN before SELECT or DDL, so
  a read-then-write is not atomic and DDL autocommits statement by statement. We switch the driver's own
  transaction handling off and emit BEGIN ourselves, which also makes migrations transactional.
* Writers use ``BEGIN IMMEDIATE`` (taken via the ``sqlite_begin`` execution option) so two threads never
  both read under a shared lock and then deadlock upgrading it; the busy timeout makes them queue instead.
* WAL lets readers proceed while one writer commits. ``synchronous`` stays at its default (FULL): an
  intent row must survive a power cut, not only a process crash.
* Foreign keys are off by default in SQLite; turn them on so both backends reject orphan rows.
"""

from __future__ import annotations

import sqlite3
import time
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import URL, Connection, make_url
from sqlalchemy.orm import Session
from sqlalchemy.pool import StaticPool

#: Execution option naming the SQLite BEGIN flavour ("DEFERRED" or "IMMEDIATE").
SQLITE_BEGIN = "sqlite_begin"
_SQLITE_BUSY_TIMEOUT_S = 30.0
#: PostgreSQL connections a process keeps (opened as needed, never more than these two together at once).
_POOL_KEPT, _POOL_EXTRA = 20, 5


def normalize_url(url: str | URL) -> URL:
    """Parse ``url`` and pick the installed PostgreSQL driver for a bare ``postgresql://`` URL.

    SQLAlchemy maps ``postgresql://`` to psycopg2, which this project does not install; psycopg 3 is.
    """
    parsed = make_url(url)
    if parsed.drivername in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    return parsed


def is_sqlite_memory(url: URL) -> bool:
    return url.get_backend_name() == "sqlite" and url.database in (None, "", ":memory:")


def make_engine(url: str | URL, **kwargs: Any) -> Engine:
    """Create an engine with the store's connection policy for ``url``'s backend."""
    parsed = normalize_url(url)
    if parsed.get_backend_name() != "sqlite":
        kwargs.setdefault("pool_pre_ping", True)
        # The receiver runs up to 40 store calls at once (Starlette's thread pool). With the default pool (5 kept,
        # 10 more opened on demand and closed on return) an alert storm opened and closed a PostgreSQL connection
        # (a backend process fork) every few deliveries; connections are kept now, up to _POOL_KEPT per process.
        kwargs.setdefault("pool_size", _POOL_KEPT)
        kwargs.setdefault("max_overflow", _POOL_EXTRA)
        return create_engine(parsed, **kwargs)

    connect_args = dict(kwargs.pop("connect_args", {}))
    connect_args.setdefault("timeout", _SQLITE_BUSY_TIMEOUT_S)
    connect_args.setdefault("check_same_thread", False)
    if is_sqlite_memory(parsed):
        # One shared connection, or every pooled connection would see its own empty database.
        kwargs.setdefault("poolclass", StaticPool)
    engine = create_engine(parsed, connect_args=connect_args, **kwargs)
    _install_sqlite_hooks(engine, wal=not is_sqlite_memory(parsed))
    return engine


def _install_sqlite_hooks(engine: Engine, *, wal: bool) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None  # we emit BEGIN ourselves, see module docstring
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute("PRAGMA foreign_keys=ON")
            if wal:
                _enable_wal(cursor)
        finally:
            cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        mode = str(conn.get_execution_options().get(SQLITE_BEGIN, "DEFERRED")).upper()
        if mode not in ("DEFERRED", "IMMEDIATE", "EXCLUSIVE"):
            raise ValueError(f"bad {SQLITE_BEGIN} execution option: {mode!r}")
        conn.exec_driver_sql(f"BEGIN {mode}")


def _enable_wal(cursor: Any) -> None:
    """Switch the database file to WAL (persistent, so usually a no-op read).

    Changing the journal mode does not wait on the busy handler: when several connections open a new
    database at once, all but one get "database is locked". Retry until the busy timeout instead.
    """
    deadline = time.monotonic() + _SQLITE_BUSY_TIMEOUT_S
    while True:
        try:
            if str(cursor.execute("PRAGMA journal_mode").fetchone()[0]).lower() != "wal":
                cursor.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) and "busy" not in str(exc):
                raise
            if time.monotonic() >= deadline:
                raise
            time.sleep(0.02)


def writer(engine: Engine) -> Engine:
    """The engine to use for write transactions: on SQLite it takes the write lock at BEGIN."""
    if engine.dialect.name == "sqlite":
        return engine.execution_options(**{SQLITE_BEGIN: "IMMEDIATE"})
    return engine


def upsert_insert(session: Session, table: Any) -> Any:
    """The dialect's own INSERT for ``table``, the one with ``on_conflict_do_nothing/do_update`` (the store runs on
    PostgreSQL and SQLite only)."""
    from sqlalchemy.dialects import postgresql, sqlite

    dialect = session.get_bind().dialect.name
    if dialect == "postgresql":
        return postgresql.insert(table)
    if dialect == "sqlite":
        return sqlite.insert(table)
    raise NotImplementedError(f"the store on {dialect}")  # pragma: no cover
