"""CreateIndex only ever renders quoted, validated identifiers; an unreachable database is a reading, not a crash."""

from __future__ import annotations

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from remediation.providers.database import (
    CreateIndex,
    DatabaseActionError,
    PostgresInspector,
)
from remediation.providers.dbqueries import quote_ident

QUOTED = r'"(?:[^"]|"")+"'
CREATE_SQL = re.compile(
    rf'CREATE INDEX CONCURRENTLY IF NOT EXISTS ({QUOTED}) ON ({QUOTED})\.({QUOTED}) \(({QUOTED}(?:, {QUOTED})*)\)'
)


def unquote(quoted: str) -> str:
    assert quoted.startswith('"') and quoted.endswith('"')
    inner = quoted[1:-1]
    assert '"' not in inner.replace('""', ""), f"unescaped quote in {quoted!r}"
    return inner.replace('""', '"')


def test_dbinspect_renders_exact_sql() -> None:
    stmt = CreateIndex(table="orders", columns=("customer_id", "createdAt"), name="ix_orders_cust", schema="app")
    assert stmt.sql == (
        'CREATE INDEX CONCURRENTLY IF NOT EXISTS "ix_orders_cust" ON "app"."orders" ("customer_id", "createdAt")'
    )


def test_dbinspect_default_schema_and_derived_name() -> None:
    stmt = CreateIndex(table="orders", columns=("customer_id",))
    assert stmt.schema_name == "public"
    assert stmt.sql == (
        'CREATE INDEX CONCURRENTLY IF NOT EXISTS "ix_orders_customer_id" ON "public"."orders" ("customer_id")'
    )
    long = CreateIndex(table="t" * 40, columns=("c" * 40, "d" * 40))
    assert len(long.name) <= 63
    assert long.name != CreateIndex(table="t" * 40, columns=("c" * 40, "e" * 40)).name


@pytest.mark.parametrize(
    "hostile",
    [
        'users"; DROP TABLE users; --',
        "users; DROP TABLE users",
        'a"b',
        "a b",
        "",
        "1abc",
        "x" * 64,
        "abc\x00",
        "tab\tle",
        "naïve",
        "public.users",
        "users)",
    ],
)
@pytest.mark.parametrize("field", ["table", "column", "name", "schema"])
def test_dbinspect_rejects_hostile_identifiers(hostile: str, field: str) -> None:
    values: dict[str, object] = {"table": "orders", "columns": ("customer_id",), "name": "ix_ok", "schema": "public"}
    if field == "column":
        values["columns"] = ("customer_id", hostile)
    else:
        values[field] = hostile
    if field == "name" and hostile == "":
        CreateIndex.model_validate(values)  # empty name means "derive one"
        return
    with pytest.raises(ValidationError):
        CreateIndex.model_validate(values)


def test_dbinspect_rejects_empty_and_duplicate_columns() -> None:
    with pytest.raises(ValidationError):
        CreateIndex(table="orders", columns=())
    with pytest.raises(ValidationError):
        CreateIndex(table="orders", columns=("a", "a"))


@settings(max_examples=300, deadline=None)
@given(table=st.text(max_size=70), column=st.text(max_size=70), name=st.text(max_size=70), schema=st.text(max_size=70))
def test_dbinspect_arbitrary_strings_are_safe_or_rejected(table: str, column: str, name: str, schema: str) -> None:
    try:
        stmt = CreateIndex(table=table, columns=(column,), name=name, schema=schema)
    except ValidationError:
        return
    match = CREATE_SQL.fullmatch(stmt.sql)
    assert match, stmt.sql
    got_name, got_schema, got_table, got_columns = match.groups()
    assert unquote(got_name) == stmt.name
    assert unquote(got_schema) == schema
    assert unquote(got_table) == table
    assert unquote(got_columns) == column
    assert ";" not in stmt.sql and "--" not in stmt.sql.replace('"', "")


@given(st.text().filter(lambda s: "\x00" not in s))
def test_dbinspect_quote_ident_round_trips(value: str) -> None:
    quoted = quote_ident(value)
    assert unquote(quoted) == value


UNREACHABLE = "postgresql+psycopg://postgres@127.0.0.1:1/nowhere"


@pytest.mark.parametrize("url", [UNREACHABLE, "this is not a database url"])
async def test_dbinspect_unreachable_database_is_unavailable_not_an_exception(url: str) -> None:
    inspector = PostgresInspector(url, connect_timeout_s=2)
    try:
        reports = [
            await inspector.blocking_locks(),
            await inspector.long_running(1.0),
            await inspector.scan_stats(10),
            await inspector.unused_indexes(),
            await inspector.top_statements(5),
        ]
        for report in reports:
            assert report.available is False
            assert report.reason, report
        if url == UNREACHABLE:
            assert "127.0.0.1" in reports[0].reason
            assert "OperationalError" in reports[0].reason
        with pytest.raises(DatabaseActionError):
            await inspector.terminate_backend(12345)
        with pytest.raises(DatabaseActionError):
            await inspector.create_index_concurrently(CreateIndex(table="orders", columns=("customer_id",)))
    finally:
        await inspector.aclose()


async def test_dbinspect_password_is_not_leaked_in_reasons() -> None:
    inspector = PostgresInspector("postgresql+psycopg://postgres:s3cret-pw@127.0.0.1:1/nowhere", connect_timeout_s=2)
    report = await inspector.blocking_locks()
    assert not report.available
    assert "s3cret-pw" not in report.reason
    await inspector.aclose()
