"""Trimming a metrics page before parsing changes no figure a reading computes, only how long parsing takes."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from remediation.providers.dbops import parse_db_operations
from remediation.providers.metrics import REQUEST_SERIES, parse_request_stats
from remediation.providers.promtext import sample_name, tail_samples

METHODS = st.sampled_from(["GET", "POST", "DELETE"])
PATHS = st.sampled_from(["/api/checkout", "/api/cart", "/", "/api/uploads", '/a"quoted\\path'])
STATUS = st.sampled_from([200, 201, 404, 429, 500, 503])
REQUEST = st.tuples(METHODS, PATHS, STATUS, st.integers(min_value=0, max_value=20_000))
DB_OP = st.tuples(st.sampled_from(["kamkmserve_order", "kamkmserve_user"]),
                  st.sampled_from(["SELECT", "UPDATE"]), st.booleans(), st.integers(min_value=0, max_value=9_000))


def escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"')


def page(requests: list[tuple[str, str, int, int]], db_ops: list[tuple[str, str, bool, int]]) -> str:
    """A page in the app's order (docs/reference/kamkmserve.md §2.1): process gauges, custom metrics by first use,
    request records."""
    lines = ["# HELP process_uptime_seconds Process uptime in seconds", "# TYPE process_uptime_seconds gauge",
             "process_uptime_seconds 42.125", "# HELP process_memory_used_bytes Heap used bytes",
             "# TYPE process_memory_used_bytes gauge", "process_memory_used_bytes 1234567"]
    labels = [f'method="{m}",path="{escape(p)}",status="{s}"' for m, p, s, _ in requests]
    if requests:
        lines += ["# HELP http_request_duration Auto-exported metric", "# TYPE http_request_duration gauge"]
        lines += [f"http_request_duration{{{label}}} {d}" for label, (*_, d) in zip(labels, requests, strict=True)]
        lines += ["# HELP http_request_count Auto-exported metric", "# TYPE http_request_count gauge"]
        lines += [f"http_request_count{{{label}}} 1" for label in labels]
    if db_ops:
        lines += ["# HELP db_operation_duration Auto-exported metric", "# TYPE db_operation_duration gauge"]
        lines += [f'db_operation_duration{{operation="{op}",table="{t}",success="{str(ok).lower()}"}} {d}'
                  for t, op, ok, d in db_ops]
    lines += ["# HELP upload_accepted Auto-exported metric", "# TYPE upload_accepted gauge", "upload_accepted 1"]
    lines += ["# HELP http_requests_total Total HTTP requests observed", "# TYPE http_requests_total counter"]
    lines += [f"http_requests_total{{{label}}} 1" for label in labels]
    return "\n".join(lines) + "\n"


def figures(stats: object) -> dict[str, object]:
    dumped = stats.model_dump()  # type: ignore[attr-defined]
    dumped.pop("at", None)
    return dumped


@settings(max_examples=150, deadline=None)
@given(requests=st.lists(REQUEST, max_size=120), db_ops=st.lists(DB_OP, max_size=60),
       window=st.integers(min_value=1, max_value=150))
def test_request_figures_are_identical_on_the_trimmed_page(requests: list[tuple[str, str, int, int]],
                                                           db_ops: list[tuple[str, str, bool, int]],
                                                           window: int) -> None:
    full = page(requests, db_ops)
    trimmed = tail_samples(full, REQUEST_SERIES, window)
    assert figures(parse_request_stats(trimmed, window)) == figures(parse_request_stats(full, window))


@settings(max_examples=100, deadline=None)
@given(requests=st.lists(REQUEST, max_size=40), db_ops=st.lists(DB_OP, max_size=80),
       window=st.integers(min_value=1, max_value=100))
def test_db_operation_figures_are_identical_on_the_trimmed_page(requests: list[tuple[str, str, int, int]],
                                                                db_ops: list[tuple[str, str, bool, int]],
                                                                window: int) -> None:
    full = page(requests, db_ops)
    trimmed = tail_samples(full, ("process_uptime_seconds", "db_operation_duration"), window)
    assert figures(parse_db_operations(trimmed, window)) == figures(parse_db_operations(full, window))


def test_only_the_last_samples_of_the_wanted_series_are_kept() -> None:
    full = page([("GET", "/a", 200, 5), ("GET", "/b", 500, 7), ("GET", "/c", 200, 9)], [])
    trimmed = tail_samples(full, ("http_requests_total",), 2)
    samples = [line for line in trimmed.splitlines() if line and not line.startswith("#")]
    assert samples == ['http_requests_total{method="GET",path="/b",status="500"} 1',
                       'http_requests_total{method="GET",path="/c",status="200"} 1']
    assert "# TYPE http_request_duration gauge" in trimmed  # headers stay, so the parser sees valid families


def test_sample_names_are_read_with_and_without_labels() -> None:
    assert sample_name('http_requests_total{method="GET"} 1') == "http_requests_total"
    assert sample_name("upload_accepted 1") == "upload_accepted"
