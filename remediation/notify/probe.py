"""A read-only probe's answer, as ``remediate check`` shows it: reachable, authorised, what is missing."""

from __future__ import annotations

from typing import Protocol

from pydantic import BaseModel, ConfigDict


class ProbeResult(BaseModel):
    """``None`` for reachable/authorised means "not determined" (not configured, or nothing read-only to ask)."""

    model_config = ConfigDict(frozen=True)

    reachable: bool | None
    authorised: bool | None
    detail: str = ""
    missing: tuple[str, ...] = ()
    degraded: bool = False  # it answered, but without something the runbooks need (the detail says what)

    @property
    def ok(self) -> bool:
        return self.reachable is not False and self.authorised is not False and not self.missing

    @classmethod
    def fine(cls, detail: str) -> ProbeResult:
        return cls(reachable=True, authorised=True, detail=detail)

    @classmethod
    def refused(cls, detail: str) -> ProbeResult:
        return cls(reachable=True, authorised=False, detail=detail)

    @classmethod
    def unreachable(cls, detail: str) -> ProbeResult:
        return cls(reachable=False, authorised=None, detail=detail)

    @classmethod
    def absent(cls, *what: str) -> ProbeResult:
        return cls(reachable=None, authorised=None, detail="not configured", missing=tuple(what))


class Probeable(Protocol):
    """An adapter that knows its own cheapest read-only call."""

    async def probe(self) -> ProbeResult: ...
