"""Alembic environment for the store.

Normally driven by :func:`remediation.store.migrate.upgrade`, which hands over an open connection in
``config.attributes["connection"]`` (already inside a transaction, under the store's connection policy).
Without one (e.g. the ``alembic`` command line with ``-x``-less config) it builds its own engine from the
``sqlalchemy.url`` main option. ``render_as_batch`` is on because SQLite can only ALTER a table by
rebuilding it; batch mode does that on SQLite and is a plain ALTER on PostgreSQL.
"""

from __future__ import annotations

from alembic import context
from sqlalchemy.engine import Connection

from remediation.store import notify_state  # noqa: F401  (its tables live outside tables.py: register them)
from remediation.store.engine import make_engine, writer
from remediation.store.tables import Base

config = context.config
target_metadata = Base.metadata


def _configure(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=True,
        compare_type=True,
    )


def run_migrations_offline() -> None:
    """Emit SQL to stdout (``alembic upgrade --sql``) instead of running it."""
    context.configure(
        url=config.get_main_option("sqlalchemy.url"),
        target_metadata=target_metadata,
        literal_binds=True,
        render_as_batch=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        _configure(connection)
        with context.begin_transaction():
            context.run_migrations()
        return

    url = config.get_main_option("sqlalchemy.url")
    if not url:
        raise RuntimeError("no connection in config.attributes and no sqlalchemy.url main option")
    engine = make_engine(url)
    try:
        with writer(engine).begin() as conn:
            _configure(conn)
            with context.begin_transaction():
                context.run_migrations()
    finally:
        engine.dispose()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
