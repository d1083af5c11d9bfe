"""Tests that need an external service: skip when it is missing, or fail when CI says it must be there.

A suite that silently skips everything interesting is worse than a red one, so CI sets
``REMEDIATE_REQUIRE_SERVICES=1`` and a missing service becomes a failure with the reason spelled out.
On a laptop without PostgreSQL the same tests just skip.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Literal

import pytest

REQUIRE_ENV = "REMEDIATE_REQUIRE_SERVICES"
#: Admin URL used to create/drop throwaway databases; override with REMEDIATE_TEST_PG_ADMIN_URL.
PG_ADMIN_URL_ENV = "REMEDIATE_TEST_PG_ADMIN_URL"
DEFAULT_PG_ADMIN_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"


def services_required() -> bool:
    return os.environ.get(REQUIRE_ENV, "").strip().lower() in {"1", "true", "yes", "on"}


def require_service(name: str, reachable: bool, why: str) -> None:
    """Return if ``reachable``; otherwise skip the test, or fail it when services are required."""
    if reachable:
        return
    message = f"{name} is not available: {why}"
    if services_required():
        pytest.fail(f"{message} ({REQUIRE_ENV}=1, so this is a failure, not a skip)", pytrace=False)
    pytest.skip(message)


def pg_admin_url() -> str:
    return os.environ.get(PG_ADMIN_URL_ENV) or DEFAULT_PG_ADMIN_URL


def postgres_reachable(admin_url: str) -> tuple[bool, str]:
    """(True, "") if we can connect to ``admin_url``, else (False, the reason)."""
    from sqlalchemy import create_engine, text

    engine = create_engine(admin_url, connect_args={"connect_timeout": 3})
    try:
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
        return True, ""
    except Exception as exc:
        return False, f"cannot connect to {engine.url.render_as_string(hide_password=True)}: {exc}"
    finally:
        engine.dispose()


@contextmanager
def temporary_postgres_database(admin_url: str, prefix: str = "remediate_test",
                                template: str | None = None) -> Iterator[str]:
    """Create a uniquely named database (a copy of ``template`` when given), yield its URL, and drop it (even with
    open connections) after."""
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT", connect_args={"connect_timeout": 3})
    try:
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"' + (f' TEMPLATE "{template}"' if template else "")))
        try:
            yield make_url(admin_url).set(database=name).render_as_string(hide_password=False)
        finally:
            with admin.connect() as conn:
                conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    finally:
        admin.dispose()


def postgres_url_fixture(name: str = "postgres_url", prefix: str = "remediate_test",
                         scope: Literal["session", "module", "function"] = "session") -> Callable[..., Iterator[str]]:
    """Build a fixture (session-scoped unless told otherwise) yielding the URL of a throwaway PostgreSQL database.

    Use in a conftest: ``postgres_url = postgres_url_fixture()``. Skips (or fails, see
    :func:`require_service`) when PostgreSQL is unreachable.
    """

    @pytest.fixture(scope=scope, name=name)
    def _postgres_url() -> Iterator[str]:
        admin_url = pg_admin_url()
        reachable, why = postgres_reachable(admin_url)
        require_service("PostgreSQL", reachable, why)
        with temporary_postgres_database(admin_url, prefix) as url:
            yield url

    return _postgres_url
