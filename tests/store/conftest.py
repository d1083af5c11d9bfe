"""Backends for the store tests: every test that uses ``db_url`` runs on SQLite and on PostgreSQL.

PostgreSQL gets one throwaway database per session (see ``tests.helpers.services``) and one schema per
test, selected through ``search_path`` in the URL, so tests are isolated without paying for a
CREATE DATABASE each.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from remediation.store import Store
from tests.helpers.services import postgres_url_fixture

postgres_url = postgres_url_fixture()

BACKENDS = ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)]


@pytest.fixture(params=BACKENDS)
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """An empty database URL. The SQLite file lives in a directory that does not exist yet."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'state' / 'remediate.db'}"
        return

    base: str = request.getfixturevalue("postgres_url")
    schema = f"t_{uuid.uuid4().hex[:12]}"
    admin = create_engine(base, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(text(f'CREATE SCHEMA "{schema}"'))
        url = make_url(base).update_query_dict({"options": f"-csearch_path={schema}"})
        yield url.render_as_string(hide_password=False)
        with admin.connect() as conn:
            conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
    finally:
        admin.dispose()


@pytest.fixture
def make_store(db_url: str) -> Iterator[Callable[[], Store]]:
    """Factory for extra ``Store`` instances on the same database (another process, in effect)."""
    stores: list[Store] = []

    def _make() -> Store:
        store = Store(db_url)
        stores.append(store)
        return store

    yield _make
    for store in stores:
        store.dispose()


@pytest.fixture
def store(make_store: Callable[[], Store]) -> Store:
    """A migrated store on an empty database."""
    s = make_store()
    s.migrate()
    return s


@pytest.fixture
def backend(db_url: str) -> str:
    return make_url(db_url).get_backend_name()


@pytest.fixture
def integrity_errors(monkeypatch: pytest.MonkeyPatch) -> list[IntegrityError]:
    """Every IntegrityError the store's alert ingest meets (and retries), collected by wrapping it."""
    from remediation.store import alerts as store_alerts

    met: list[IntegrityError] = []
    real_ingest = store_alerts.ingest

    def counting(session: Session, item: store_alerts.AlertIn) -> store_alerts.IngestResult:
        try:
            return real_ingest(session, item)
        except IntegrityError as exc:
            met.append(exc)
            raise

    monkeypatch.setattr(store_alerts, "ingest", counting)
    return met
