"""One log record, one line: control characters from deliveries are escaped before any handler sees them.

Everything intake logs can carry sender-controlled text: an Alertmanager ``groupKey``, alert names, labels, a
request path, an exception message quoting a payload. A raw newline in any of them would let a sender write a
second, forged log line (``...\\n2026-11-26 INFO incident closed``); an ANSI escape could recolour or erase a
terminal. So :func:`intake_logger` hands every intake module the ``remediation.intake`` logger with
:class:`OneLineFilter` attached, and the filter escapes the message, every argument and the exception text of
every record that logger handles. A call site cannot forget it, because it never has to remember it.

Escaped: C0 and C1 control characters and DEL (``\\n``, ``\\r``, ``\\t`` by name, the rest as ``\\xNN``), the
Unicode line and paragraph separators, and the bidirectional overrides that can make a line read differently
from what it contains. Backslashes are left alone, so a logged ``\\n`` may have been either; the stored payload
keeps the original bytes.
"""

from __future__ import annotations

import logging
import re
import traceback
from typing import Any

INTAKE_LOGGER = "remediation.intake"

_UNSAFE = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]")
_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _escape(match: re.Match[str]) -> str:
    char = match.group()
    if char in _NAMED:
        return _NAMED[char]
    code = ord(char)
    return f"\\x{code:02x}" if code <= 0xFF else f"\\u{code:04x}"


def one_line(text: str) -> str:
    """``text`` with every character that could end a log line or drive a terminal written as an escape."""
    return _UNSAFE.sub(_escape, text)


class _Escaped(str):
    """An argument's ``str`` made one line, whose ``%r`` is the original's ``repr`` made one line.

    Keeping ``%r`` faithful matters: ``repr`` already escapes newlines, so escaping the ``str`` first and then
    taking its ``repr`` would double every backslash in the log.
    """

    original: object

    def __new__(cls, original: object) -> _Escaped:
        escaped = super().__new__(cls, one_line(str(original)))
        escaped.original = original
        return escaped

    def __repr__(self) -> str:
        return one_line(repr(self.original))


def _safe_arg(value: Any) -> Any:
    """``value`` itself when neither its ``str`` nor its ``repr`` has anything to escape, else an :class:`_Escaped`.

    Only the arguments that need it are replaced, so ``%d`` and ``%.1f`` still get their numbers (of any type).
    """
    if isinstance(value, int | float):
        return value
    if _UNSAFE.search(str(value)) is None and _UNSAFE.search(repr(value)) is None:
        return value
    return _Escaped(value)


class OneLineFilter(logging.Filter):
    """Rewrites a record in place so that its message and exception text contain no raw control characters."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.msg, str):
            record.msg = one_line(record.msg)
        else:
            record.msg = _Escaped(record.msg)
        if isinstance(record.args, tuple):
            record.args = tuple(_safe_arg(arg) for arg in record.args)
        elif isinstance(record.args, dict):  # log.info("%(name)s", {"name": ...})
            record.args = {key: _safe_arg(value) for key, value in record.args.items()}
        if record.exc_info and record.exc_info[1] is not None and not record.exc_text:
            record.exc_text = _traceback_text(record.exc_info[1])
        return True


_CAUSE = "\nThe above exception was the direct cause of the following exception:\n\n"
_CONTEXT = "\nDuring handling of the above exception, another exception occurred:\n\n"


def _traceback_text(exc: BaseException) -> str:
    """The traceback as logging prints it, with each exception's own message made one line.

    A traceback is several lines by nature, but its stack lines come from our source files; the messages are
    where sender text ends up (a pydantic error quoting a field, a database error quoting a value), also in a
    chained cause, so those are the parts that must not add lines.
    """
    chain: list[tuple[BaseException, str]] = []
    seen: set[int] = set()
    current: BaseException | None = exc
    link = ""
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        chain.append((current, link))
        if current.__cause__ is not None:
            current, link = current.__cause__, _CAUSE
        elif current.__context__ is not None and not current.__suppress_context__:
            current, link = current.__context__, _CONTEXT
        else:
            current = None
    parts: list[str] = []
    for error, link_to_next in reversed(chain):
        stack = "".join(traceback.format_tb(error.__traceback__))
        if stack:
            parts.append("Traceback (most recent call last):\n" + stack)
        parts.append(one_line("".join(traceback.format_exception_only(error)).rstrip("\n")) + "\n")
        parts.append(link_to_next)
    return "".join(parts).rstrip("\n")


def intake_logger() -> logging.Logger:
    """The ``remediation.intake`` logger, with :class:`OneLineFilter` attached once (idempotent)."""
    logger = logging.getLogger(INTAKE_LOGGER)
    if not any(isinstance(existing, OneLineFilter) for existing in logger.filters):
        logger.addFilter(OneLineFilter())
    return logger
