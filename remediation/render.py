"""Records and prose for a terminal of any width, 80 columns included.

Rich squeezes a table that is wider than the terminal by cutting cells (``incid…``) and splitting words
(``configurati`` / ``on``): an id cut like that cannot be copied, and a command wrapped by Rich pastes as two. So:

* a table is printed only when every column gets its whole width (a free-text column may wrap at spaces, and gets at
  least :data:`MIN_WRAP` columns); otherwise each record becomes a block of ``key: value`` lines;
* prose is wrapped here, at spaces only, so an id or a path stays whole on its line (a single word longer than the
  terminal is the one thing that may pass the edge);
* a command to copy is printed alone on its line with ``soft_wrap=True``: Rich never inserts a newline into it.
"""

from __future__ import annotations

import textwrap
from collections.abc import Sequence
from dataclasses import dataclass

from rich.cells import cell_len
from rich.console import Console
from rich.table import Table
from rich.text import Text

#: Columns a wrapping free-text column needs at least to stay readable.
MIN_WRAP = 30
#: What rich's default box adds to a table per column (one space of padding either side, one rule), plus one.
_PER_COLUMN = 3

Cell = str | Text


@dataclass(frozen=True)
class Column:
    name: str
    wraps: bool = False  # free text: may wrap at spaces; every other column is shown whole or not as a table


def _plain(cell: Cell) -> str:
    return cell.plain if isinstance(cell, Text) else cell


def _width(texts: Sequence[str]) -> int:
    return max((cell_len(line) for text in texts for line in text.splitlines() or [""]), default=0)


def table_fits(columns: Sequence[Column], rows: Sequence[Sequence[Cell]], width: int) -> bool:
    """Whether every column can have its whole width (a wrapping one: at least ``MIN_WRAP``) within ``width``."""
    needed = _PER_COLUMN * len(columns) + 1
    for i, column in enumerate(columns):
        natural = _width([column.name, *(_plain(row[i]) for row in rows)])
        needed += min(natural, MIN_WRAP) if column.wraps else natural
    return needed <= width


def wrap(text: str, width: int, indent: str = "", hang: str | None = None) -> list[str]:
    """``text`` in lines of at most ``width`` columns, broken at spaces only (ids, paths and URLs stay whole)."""
    lines: list[str] = []
    for paragraph in text.splitlines() or [""]:
        lines += textwrap.wrap(paragraph, max(width, 20), initial_indent=indent,
                               subsequent_indent=indent if hang is None else hang, break_long_words=False,
                               break_on_hyphens=False) or [indent.rstrip()]
    return lines


def say(console: Console, text: str, *, indent: str = "", hang: str | None = None, style: str | None = None) -> None:
    """Print plain ``text`` (never read as markup) wrapped within the console's width."""
    for line in wrap(text, console.width, indent, hang):
        console.print(line, style=style, markup=False, highlight=False, soft_wrap=True)


def command(console: Console, line: str, *, indent: str = "") -> None:
    """A command to copy: alone on its line, never wrapped by Rich (the terminal may fold it; a paste is one line)."""
    console.print(f"{indent}{line}", markup=False, highlight=False, soft_wrap=True)


def records(console: Console, columns: Sequence[Column | str], rows: Sequence[Sequence[Cell]], *,
            title: str = "") -> None:
    """``rows`` as a table when it fits the console, else one block per row: its first cell as the block's first
    line (``name: value``), the others indented below it."""
    cols = [c if isinstance(c, Column) else Column(c) for c in columns]
    if table_fits(cols, rows, console.width):
        table = Table(title=title or None, title_justify="left")
        for column in cols:
            table.add_column(column.name, no_wrap=not column.wraps, overflow="fold" if column.wraps else "ellipsis")
        for row in rows:
            table.add_row(*row)
        console.print(table)
        return
    if title:
        console.print(title, style="italic", markup=False, highlight=False)
    for n, row in enumerate(rows):
        if n:
            console.print("")
        for i, (column, cell) in enumerate(zip(cols, row, strict=True)):
            indent = "" if i == 0 else "  "
            label = f"{indent}{column.name}: "
            lines = wrap(label + _plain(cell), console.width, "", " " * (len(indent) + 4))
            if isinstance(cell, Text) and len(lines) == 1:  # keep its colour when it stays on one line
                console.print(Text(label) + cell, soft_wrap=True)
                continue
            for line in lines:
                console.print(line, markup=False, highlight=False, soft_wrap=True)
