"""Sender text in intake logs: one record is one line, whatever control characters a delivery carries."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from decimal import Decimal

import pytest

from remediation.intake import create_app
from remediation.intake.logsafe import intake_logger, one_line
from remediation.providers.clock import VirtualClock
from remediation.store import Store
from tests.helpers import local_http
from tests.intake.intakekit import (
    FIXTURE_NAMES,
    FakeStarter,
    am_headers,
    bearer,
    fixture_json,
    serve_app,
    settings,
)

FORGED_LINE = "2026-11-26 16:03:10 | INFO | remediation.intake - incident inc-000000000000 closed: recovered"
RAW_CONTROLS = ("\n", "\r", "\x1b", "\x00", "\x85", "\u2028", "\u202e")
LINE_FORMAT = logging.Formatter("%(asctime)s | %(levelname)s | %(name)s - %(message)s")


@pytest.fixture
def intake_records(caplog: pytest.LogCaptureFixture) -> Iterator[pytest.LogCaptureFixture]:
    with caplog.at_level(logging.DEBUG, logger="remediation.intake"):
        yield caplog


def _intake(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == "remediation.intake"]


def test_a_group_key_with_newline_carriage_return_and_ansi_escape_is_logged_as_one_escaped_line(
    store: Store, clock: VirtualClock, intake_records: pytest.LogCaptureFixture
) -> None:
    body = fixture_json(FIXTURE_NAMES[0])
    body["groupKey"] = '{}:{alertname="KamkmserveHigh5xxRate"}\n' + FORGED_LINE + "\r\x1b[31mred\x1b[0m"
    body["truncatedAlerts"] = 2  # so the group key is logged
    body["alerts"][0]["labels"]["alertname"] = "Kamkmserve\nHigh5xxRate"  # logged when its incident opens
    app = create_app(settings(), store, FakeStarter(), clock=clock)
    intake_records.clear()
    with serve_app(app) as base:
        reply = local_http.post(base + "/alerts/alertmanager", content=json.dumps(body), headers=am_headers(),
                                timeout=10)
    assert reply.status_code == 200, reply.text

    records = _intake(intake_records)
    [truncated] = [r for r in records if "alerts truncated" in r.getMessage()]
    assert truncated.getMessage() == (
        'Alertmanager group {}:{alertname="KamkmserveHigh5xxRate"}\\n' + FORGED_LINE
        + "\\r\\x1b[31mred\\x1b[0m: 2 alerts truncated"
    )
    [opened] = [r for r in records if "opened by alertmanager alert" in r.getMessage()]
    assert opened.getMessage().endswith("opened by alertmanager alert 'Kamkmserve\\nHigh5xxRate'")
    for record in records:
        line = LINE_FORMAT.format(record)
        assert not any(control in line for control in RAW_CONTROLS), line
        assert "\n" + FORGED_LINE not in line


def test_an_unrouted_alert_name_with_controls_is_logged_as_one_escaped_line(
    store: Store, clock: VirtualClock, intake_records: pytest.LogCaptureFixture
) -> None:
    alert = {"name": "Nightly\r\n" + FORGED_LINE, "service": "kamkmserve\x1b[8m", "labels": {"team": "a\nb"}}
    app = create_app(settings(), store, FakeStarter(), clock=clock)
    intake_records.clear()
    with serve_app(app) as base:
        reply = local_http.post(base + "/alerts/generic", json=alert, headers=bearer(), timeout=10)
    assert reply.status_code == 200 and reply.json()["alerts"][0]["outcome"] == "unrouted", reply.text
    [unrouted] = [r for r in _intake(intake_records) if r.getMessage().startswith("unrouted generic alert")]
    line = LINE_FORMAT.format(unrouted)
    assert "'Nightly\\r\\n" + FORGED_LINE + "'" in line  # the name, as %r
    assert "alertname 'Nightly\\r\\n" in line  # and again inside the reason, as %s
    assert not any(control in line for control in RAW_CONTROLS), line


def test_every_argument_kind_is_escaped_and_numbers_keep_their_format(
    intake_records: pytest.LogCaptureFixture,
) -> None:
    log = intake_logger()
    log.warning("name %s, repr %r, count %d, ratio %.1f, error %s", "a\nb", "c\rd", 3, 0.25, ValueError("e\x1bf"))
    log.info("%(label)s", {"label": "g\u2028h"})
    log.info("message itself\nsplit")
    messages = [r.getMessage() for r in _intake(intake_records)]
    assert messages == [
        "name a\\nb, repr 'c\\rd', count 3, ratio 0.2, error e\\x1bf",
        "g\\u2028h",
        "message itself\\nsplit",
    ]


def test_arguments_with_nothing_to_escape_reach_the_handlers_unchanged(
    intake_records: pytest.LogCaptureFixture,
) -> None:
    clean = ["inc-3f2a9c1d0b7e"]
    intake_logger().info("incident %s: %d alerts", clean, Decimal(7))  # %d of a non-int number still works
    [record] = _intake(intake_records)
    assert isinstance(record.args, tuple) and record.args[0] is clean
    assert record.getMessage() == "incident ['inc-3f2a9c1d0b7e']: 7 alerts"


def test_an_exception_message_cannot_add_a_line_after_its_traceback(intake_records: pytest.LogCaptureFixture) -> None:
    try:
        try:
            raise KeyError("inner\n" + FORGED_LINE)
        except KeyError as inner:
            raise RuntimeError("outer\r\n" + FORGED_LINE) from inner
    except RuntimeError:
        intake_logger().exception("starting a run failed")
    [record] = _intake(intake_records)
    text = LINE_FORMAT.format(record)
    lines = text.splitlines()
    assert not any(line.startswith(FORGED_LINE) for line in lines), text
    assert lines[-1] == "RuntimeError: outer\\r\\n" + FORGED_LINE
    assert "KeyError: 'inner\\n" + FORGED_LINE in text  # KeyError shows its message as a repr: escaped already
    assert "The above exception was the direct cause of the following exception:" in text
    assert lines[0].endswith("starting a run failed") and lines[1] == "Traceback (most recent call last):"


@pytest.mark.parametrize(
    ("raw", "escaped"),
    [("a\nb", "a\\nb"), ("\r", "\\r"), ("\t", "\\t"), ("\x1b[2J", "\\x1b[2J"), ("\x7f", "\\x7f"), ("\x85", "\\x85"),
     ("\u2028\u2029", "\\u2028\\u2029"), ("\u202eevil", "\\u202eevil"), ("café ☕ \\n", "café ☕ \\n")],
)  # fmt: skip
def test_one_line_escapes_controls_and_leaves_printable_text_alone(raw: str, escaped: str) -> None:
    assert one_line(raw) == escaped
