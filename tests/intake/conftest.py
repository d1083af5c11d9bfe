"""Fixtures for the intake tests: a migrated store (SQLite; PostgreSQL where a test asks for it),
a recording starter, a virtual clock, and a TestClient on a fresh app."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from remediation.intake import create_app
from remediation.providers.clock import VirtualClock
from remediation.store import Store
from tests.helpers.services import postgres_url_fixture
from tests.intake.intakekit import T0, FakeStarter, TestClient, settings

intake_postgres_url = postgres_url_fixture(name="intake_postgres_url", prefix="remediate_intake")


def _pg_schema_url(base: str) -> Iterator[str]:
    schema = f"i_{uuid.uuid4().hex[:12]}"
    admin = create_engine(base, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(text(f'CREATE SCHEMA "{schema}"'))
        yield (
            make_url(base)
            .update_query_dict({"options": f"-csearch_path={schema}"})
            .render_as_string(hide_password=False)
        )
        with admin.connect() as conn:
            conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
    finally:
        admin.dispose()


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def any_db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """Both backends, for the tests whose point is dedupe under concurrency."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'intake.db'}"
        return
    yield from _pg_schema_url(request.getfixturevalue("intake_postgres_url"))


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'intake.db'}"


def _store(url: str) -> Iterator[Store]:
    store = Store(url)
    store.migrate()
    yield store
    store.dispose()


@pytest.fixture
def store(sqlite_url: str) -> Iterator[Store]:
    yield from _store(sqlite_url)


@pytest.fixture
def any_store(any_db_url: str) -> Iterator[Store]:
    yield from _store(any_db_url)


@pytest.fixture
def starter() -> FakeStarter:
    return FakeStarter()


@pytest.fixture
def clock() -> VirtualClock:
    return VirtualClock(T0)


AppFactory = Callable[..., TestClient]


@pytest.fixture
def make_client(store: Store, starter: FakeStarter, clock: VirtualClock) -> AppFactory:
    """``make_client(settings=..., store=..., starter=..., routes=...)``: a TestClient on a new app."""

    def make(**kwargs: Any) -> TestClient:
        app = create_app(
            kwargs.pop("settings", None) or settings(),
            kwargs.pop("store", store),
            kwargs.pop("starter", starter),
            clock=kwargs.pop("clock", clock),
            **kwargs,
        )
        return TestClient(app)

    return make


@pytest.fixture
def client(make_client: AppFactory) -> TestClient:
    return make_client()
