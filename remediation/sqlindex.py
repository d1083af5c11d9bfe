"""A ``CREATE INDEX CONCURRENTLY`` statement built only from validated, quoted identifiers.

Domain data (a plan carries one, remediation.models) with no database access, so plans and policy stay free of
adapters; the database adapter (remediation.providers.database) executes it.
"""

from __future__ import annotations

import hashlib
import re

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

#: PostgreSQL truncates identifiers to NAMEDATALEN - 1 bytes; we reject longer ones instead.
MAX_IDENTIFIER_BYTES = 63
#: INDEX_MAX_KEYS in a stock build.
MAX_INDEX_COLUMNS = 32
_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_$]*")


def validate_identifier(value: str, what: str = "identifier") -> str:
    """Return ``value`` if it is a plain SQL identifier we are willing to quote, else raise ValueError.

    Deliberately narrow: ASCII letters, digits, ``_`` and ``$``, not starting with a digit, at most 63
    bytes. Case is kept as given (the name is quoted, so it must match the catalog exactly).
    """
    if not isinstance(value, str) or not value:
        raise ValueError(f"{what} must be a non-empty string")
    if len(value.encode("utf-8")) > MAX_IDENTIFIER_BYTES:
        raise ValueError(f"{what} is longer than {MAX_IDENTIFIER_BYTES} bytes")
    if not _IDENTIFIER.fullmatch(value):
        raise ValueError(f"{what} {value!r} is not a plain identifier (letters, digits, _ and $; no leading digit)")
    return value


def quote_ident(value: str) -> str:
    """Double-quote an identifier, doubling embedded quotes (defence in depth behind validation)."""
    if "\x00" in value:
        raise ValueError("identifiers cannot contain NUL")
    return '"' + value.replace('"', '""') + '"'


class CreateIndex(BaseModel):
    """A ``CREATE INDEX CONCURRENTLY IF NOT EXISTS`` statement built only from validated identifiers."""

    model_config = ConfigDict(frozen=True, populate_by_name=True)

    table: str
    columns: tuple[str, ...]
    name: str = ""  # derived from table and columns when empty
    schema_name: str = Field(default="public", alias="schema")

    @field_validator("table", "schema_name")
    @classmethod
    def _plain(cls, value: str) -> str:
        return validate_identifier(value)

    @field_validator("columns")
    @classmethod
    def _columns(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        if not value:
            raise ValueError("an index needs at least one column")
        if len(value) > MAX_INDEX_COLUMNS:
            raise ValueError(f"an index takes at most {MAX_INDEX_COLUMNS} columns")
        if len(set(value)) != len(value):
            raise ValueError("index columns must be distinct")
        return tuple(validate_identifier(column, "column") for column in value)

    @model_validator(mode="after")
    def _name(self) -> CreateIndex:
        if not self.name:
            derived = "ix_" + "_".join((self.table, *self.columns))
            if len(derived) > MAX_IDENTIFIER_BYTES:
                digest = hashlib.sha1(derived.encode()).hexdigest()[:8]
                derived = f"{derived[: MAX_IDENTIFIER_BYTES - 9]}_{digest}"
            object.__setattr__(self, "name", derived)
        validate_identifier(self.name, "index name")
        return self

    @property
    def sql(self) -> str:
        columns = ", ".join(quote_ident(column) for column in self.columns)
        return (
            f"CREATE INDEX CONCURRENTLY IF NOT EXISTS {quote_ident(self.name)} "
            f"ON {quote_ident(self.schema_name)}.{quote_ident(self.table)} ({columns})"
        )
