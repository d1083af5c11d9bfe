"""JavaScript's text formats, reproduced exactly: String(number), Date#toISOString and JSON.stringify.

The app prints every number through JavaScript, so ``1`` never reads ``1.0`` and ``1e21`` reads ``1e+21``;
a reader that compares our output with the real app's must not be able to tell them apart.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from decimal import Decimal

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def js_number(value: float) -> str:
    """``String(value)`` for a JavaScript number (ECMAScript Number::toString, radix 10)."""
    if isinstance(value, bool):
        raise TypeError("a bool is not a JavaScript number")
    number = float(value)
    if math.isnan(number):
        return "NaN"
    if math.isinf(number):
        return "Infinity" if number > 0 else "-Infinity"
    if number == 0:
        return "0"  # also -0, as in JavaScript
    sign = "-" if number < 0 else ""
    # repr() gives the shortest digit string that round-trips, which is what ECMAScript asks for too;
    # only the layout (where the point goes, when to switch to exponent form) differs.
    digits_tuple, exponent = _shortest_digits(abs(number))
    digits = "".join(str(d) for d in digits_tuple)
    k = len(digits)
    n = exponent + k  # value = 0.d1d2...dk x 10^n
    if k <= n <= 21:
        return sign + digits + "0" * (n - k)
    if 0 < n <= 21:
        return sign + digits[:n] + "." + digits[n:]
    if -6 < n <= 0:
        return sign + "0." + "0" * (-n) + digits
    e = n - 1
    exp_text = ("+" if e >= 0 else "-") + str(abs(e))
    mantissa = digits if k == 1 else digits[0] + "." + digits[1:]
    return sign + mantissa + "e" + exp_text


def _shortest_digits(number: float) -> tuple[tuple[int, ...], int]:
    parsed = Decimal(repr(number)).as_tuple()
    digits = tuple(parsed.digits)
    exponent = int(parsed.exponent)
    while len(digits) > 1 and digits[-1] == 0:
        digits = digits[:-1]
        exponent += 1
    return digits, exponent


def js_round(value: float) -> int:
    """``Math.round``: halves go up (towards +infinity), unlike Python's banker's rounding."""
    floor = math.floor(value)
    return floor + 1 if value - floor >= 0.5 else floor


def js_iso(ms: int) -> str:
    """``new Date(ms).toISOString()``: millisecond precision, always UTC with a ``Z``."""
    moment = _EPOCH + timedelta(milliseconds=ms)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def parse_iso_ms(text: str) -> int:
    """Epoch milliseconds of an ISO-8601 timestamp (``Z`` or an offset; naive means UTC)."""
    moment = datetime.fromisoformat(text.strip().replace("z", "Z"))
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return (moment - _EPOCH) // timedelta(milliseconds=1)


def js_json(value: object) -> str:
    """``JSON.stringify(value)`` with no indentation; dict order is kept as JavaScript keeps insertion order.

    There is no ``undefined`` in Python: callers leave such keys out, as JSON.stringify would.
    """
    parts: list[str] = []
    _write_json(value, parts)
    return "".join(parts)


def _write_json(value: object, out: list[str]) -> None:
    if value is None:
        out.append("null")
    elif isinstance(value, bool):
        out.append("true" if value else "false")
    elif isinstance(value, int | float):
        out.append(js_number(value) if math.isfinite(value) else "null")
    elif isinstance(value, str):
        # Python's escaping with ensure_ascii=False matches JSON.stringify's (short forms for \b \f \n \r \t,
        # \u00XX for other controls, everything else literal).
        out.append(json.dumps(value, ensure_ascii=False))
    elif isinstance(value, Mapping):
        out.append("{")
        for index, (key, item) in enumerate(value.items()):
            if index:
                out.append(",")
            out.append(json.dumps(str(key), ensure_ascii=False))
            out.append(":")
            _write_json(item, out)
        out.append("}")
    elif isinstance(value, Sequence):
        out.append("[")
        for index, item in enumerate(value):
            if index:
                out.append(",")
            _write_json(item, out)
        out.append("]")
    else:
        raise TypeError(f"not JSON-serialisable the JavaScript way: {type(value).__name__}")
