"""JavaScript number, date and JSON formatting, as the real app prints them."""

from __future__ import annotations

import math

import pytest
from kamkmserve_sim.jsfmt import js_iso, js_json, js_number, js_round, parse_iso_ms


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (1, "1"),
        (1.0, "1"),
        (0, "0"),
        (-0.0, "0"),
        (-1.5, "-1.5"),
        (6.86705338, "6.86705338"),
        (25.327943649, "25.327943649"),
        (75.6317246835443, "75.6317246835443"),
        (0.1 + 0.2, "0.30000000000000004"),
        (99839544, "99839544"),
        (1e20, "100000000000000000000"),
        (1e21, "1e+21"),
        (123456789012345680000, "123456789012345680000"),
        (1.5e300, "1.5e+300"),
        (0.000001, "0.000001"),
        (1e-7, "1e-7"),
        (1.23e-18, "1.23e-18"),
        (5e-324, "5e-324"),
        (2**53, "9007199254740992"),
        (math.nan, "NaN"),
        (math.inf, "Infinity"),
        (-math.inf, "-Infinity"),
    ],
)
def test_js_number_prints_like_javascript_string_of_number(value: float, expected: str) -> None:
    assert js_number(value) == expected


def test_js_number_refuses_booleans() -> None:
    with pytest.raises(TypeError):
        js_number(True)


@pytest.mark.parametrize(("value", "expected"),
                         [(2.5, 3), (-2.5, -2), (0.49999999999999994, 0), (104.5, 105), (-0.4, 0), (7, 7)])
def test_js_round_rounds_halves_up_like_math_round(value: float, expected: int) -> None:
    assert js_round(value) == expected


def test_js_iso_has_milliseconds_and_z() -> None:
    assert js_iso(0) == "1970-01-01T00:00:00.000Z"
    assert js_iso(1795706847256) == "2026-11-26T15:27:27.256Z"


def test_parse_iso_ms_accepts_z_offsets_and_microseconds() -> None:
    assert parse_iso_ms("2026-11-26T15:27:27.256Z") == 1795706847256
    assert parse_iso_ms("2026-11-26T16:27:27.256+01:00") == 1795706847256
    assert parse_iso_ms("2026-11-26T15:27:27.256999Z") == 1795706847256


def test_js_json_is_compact_keeps_key_order_and_javascript_numbers() -> None:
    value = {"status": "warning", "metrics": {"memoryUsage": 75.0, "errorRate": 0, "avg": 12.5},
             "issues": ["Elevated memory usage"], "ok": True, "none": None, "nan": math.nan}
    assert js_json(value) == ('{"status":"warning","metrics":{"memoryUsage":75,"errorRate":0,"avg":12.5},'
                              '"issues":["Elevated memory usage"],"ok":true,"none":null,"nan":null}')


def test_js_json_escapes_strings_like_json_stringify() -> None:
    assert js_json('relation "kamkmserve_audit_log"\n\t\x01é\u2028') == \
        '"relation \\"kamkmserve_audit_log\\"\\n\\t\\u0001é\u2028"'
