"""Trim a kamkmserve metrics page to what one reading needs before it reaches the Prometheus parser.

The page prints every stored raw sample (up to 1,000 metric samples and 500 request records,
docs/reference/kamkmserve.md §2.1-§2.4), while a reading uses only the last N samples of two or three series. Parsing is
the costliest step of a reading (~50 ms for a full page on this 2-core machine), and it sits on the path from an alert
to the first containment action, so the page is cut down first and ``prometheus_client``'s parser still checks
everything that is kept.
"""

from __future__ import annotations

from collections.abc import Iterable


def sample_name(line: str) -> str:
    """The metric name of a sample line (``name{labels} value`` or ``name value``)."""
    return line.split("{", 1)[0].split(" ", 1)[0].strip()


def tail_samples(text: str, names: Iterable[str], keep_last: int) -> str:
    """Comment lines, plus the last ``keep_last`` sample lines of each series in ``names`` (others dropped).

    Series are matched on the sample name as printed (``http_requests_total``, not the family name). Sample
    order within a series is kept, so "the last N" means the N most recent, as on the page.
    """
    wanted = frozenset(names)
    lines = text.splitlines()
    seen: dict[str, int] = {}
    keep: list[bool] = [False] * len(lines)
    for index in range(len(lines) - 1, -1, -1):  # from the end: the most recent samples are last
        line = lines[index]
        if not line.strip() or line.lstrip().startswith("#"):
            keep[index] = True
            continue
        name = sample_name(line)
        if name in wanted and seen.get(name, 0) < keep_last:
            seen[name] = seen.get(name, 0) + 1
            keep[index] = True
    return "\n".join(line for line, kept in zip(lines, keep, strict=True) if kept) + "\n"
