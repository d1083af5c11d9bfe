"""Where `make test`'s CPU goes: runs the parallel part as `make test` does, with each test's CPU recorded (its own
and its reaped subprocesses': tests.helpers.cpu_profile), and prints the totals by directory and the costliest files.

    .venv/bin/python bench/suite_cpu.py [--top 25] [pytest args...]

On the 2-core machine the suite cannot finish faster than its CPU seconds / 2; this shows what that floor is made of.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--top", type=int, default=25)
    args, pytest_args = parser.parse_known_args()
    with tempfile.TemporaryDirectory() as scratch:
        log = Path(scratch) / "cpu.jsonl"
        env = {**os.environ, "REMEDIATE_TEST_CPU_LOG": str(log)}
        command = [sys.executable, "-m", "pytest", "-q", "-p", "tests.helpers.cpu_profile", "-n", "3", "--dist",
                   "loadfile", "--no-loadscope-reorder", "-m", "not wallclock", *pytest_args]
        before, wall = os.times(), time.monotonic()
        done = subprocess.run(command, cwd=REPO, env=env, check=False)
        after, wall = os.times(), time.monotonic() - wall
        rows = [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []
    total = (after.children_user + after.children_system) - (before.children_user + before.children_system)
    by_file: dict[str, list[float]] = defaultdict(lambda: [0.0, 0.0, 0])
    by_dir: dict[str, list[float]] = defaultdict(lambda: [0.0, 0])
    for row in rows:
        entry = by_file[row["file"]]
        entry[0] += row["cpu_s"]
        entry[1] += row["wall_s"]
        entry[2] += 1
        top = "/".join(row["file"].split("/")[:2])
        by_dir[top][0] += row["cpu_s"]
        by_dir[top][1] += 1
    measured = sum(r["cpu_s"] for r in rows)
    print(f"\npytest exit {done.returncode}; wall {wall:.0f} s; CPU of pytest and everything it ran {total:.0f} s "
          f"(floor on 2 cores: {total / 2:.0f} s); charged to tests {measured:.0f} s, {len(rows)} tests")
    print("\nCPU s   tests  directory")
    for name, (cpu, count) in sorted(by_dir.items(), key=lambda kv: -kv[1][0]):
        print(f"{cpu:6.0f}  {int(count):5d}  {name}")
    print(f"\nCPU s   wall s  tests  file (top {args.top})")
    for name, (cpu, wall_s, count) in sorted(by_file.items(), key=lambda kv: -kv[1][0])[:args.top]:
        print(f"{cpu:6.0f}  {wall_s:6.0f}  {int(count):5d}  {name}")
    return done.returncode


if __name__ == "__main__":
    sys.exit(main())
