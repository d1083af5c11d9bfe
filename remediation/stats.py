"""Statistics computed the way an operator would by hand from raw samples (no interpolation)."""

from __future__ import annotations

import math
from fractions import Fraction


def percentile(values: list[float], pct: float) -> float:
    """Nearest-rank percentile (what an operator computes by hand from raw samples)."""
    ordered = sorted(values)
    # Exact arithmetic: with floats, 7 / 100 * 100 is 7.000000000000001 and the rank would be one too high.
    rank = min(len(ordered), max(1, math.ceil(Fraction(pct) * len(ordered) / 100)))
    return ordered[rank - 1]
