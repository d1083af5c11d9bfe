"""A pytest plugin that records each test's CPU time, its own and its reaped subprocesses', for ``bench/suite_cpu.py``.

Loaded with ``-p tests.helpers.cpu_profile``; writes one JSON line per test phase to ``$REMEDIATE_TEST_CPU_LOG``
(each xdist worker appends to the same file). A subprocess counts when it is waited for, so a server a module fixture
started is charged to the teardown that stops it, which belongs to the same file.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Generator
from typing import Any

import pytest


def _cpu() -> float:
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item: pytest.Item, nextitem: pytest.Item | None) -> Generator[None, Any, None]:
    path = os.environ.get("REMEDIATE_TEST_CPU_LOG")
    cpu, wall = _cpu(), time.monotonic()
    yield
    if path:
        line = {"file": item.nodeid.split("::", 1)[0], "test": item.nodeid, "cpu_s": round(_cpu() - cpu, 3),
                "wall_s": round(time.monotonic() - wall, 3)}
        with open(path, "a") as out:
            out.write(json.dumps(line) + "\n")
