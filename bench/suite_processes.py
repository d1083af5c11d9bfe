"""Where a command's CPU goes, by kind of process: runs it (default ``make test``) while reading every process's CPU
from /proc twice a second, and prints the totals by kind (pytest workers, Prefect servers, Chromium, run_stack,
``remediate`` commands, PostgreSQL, ...).

    .venv/bin/python bench/suite_processes.py [--interval 0.5] [-- COMMAND...]

Each process is counted itself, including those nobody waits for (PostgreSQL's backends); charging a subprocess's
CPU to the test that reaps it lands it on whichever test runs when Python collects the zombie. A process's last
half-second before it exits may be missed. Linux only.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
TICKS = os.sysconf("SC_CLK_TCK")

#: The first rule whose needle is in a process's command line names its kind.
KINDS: tuple[tuple[str, str], ...] = (
    ("prefect server start", "Prefect server (prefect server start)"),
    ("prefect.server.api.server:create_app", "Prefect temporary/test-harness server"),
    ("orch_stack_main", "run_stack (tests' stand-in receiver)"),
    ("remediation.cli serve", "remediate serve"),
    ("remediation.cli demo", "remediate demo"),
    ("remediation.cli", "remediate, other commands"),
    ("prefect.engine", "Prefect flow-run child (runner)"),
    ("--type=gpu-process", "Chromium GPU"),
    ("--type=renderer", "Chromium renderer"),
    ("chromium", "Chromium, other"),
    ("alertmanager", "Alertmanager"), ("clamd", "clamd"), ("moto", "moto server"), ("promtool", "promtool"),
    ("postgres", "PostgreSQL"),
    ("exec(eval(sys.stdin", "pytest xdist worker"),
    ("pytest", "pytest (main process)"),
    ("mypy", "static checks"), ("lint-imports", "static checks"), ("ruff", "static checks"),
    ("python", "other Python"),
)


@dataclass
class Seen:
    kind: str
    first_s: float
    last_s: float


def cpu_and_start(pid: int) -> tuple[float, str] | None:
    """The process's user+system CPU seconds and its start time (to tell a reused pid), or None if it is gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return (int(fields[11]) + int(fields[12])) / TICKS, fields[19]


def kind_of(pid: int) -> str:
    try:
        command = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return "gone before it was named"
    return next((name for needle, name in KINDS if needle in command), "other")


def pids() -> list[int]:
    return [int(name) for name in os.listdir("/proc") if name.isdigit()]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--interval", type=float, default=0.5, help="seconds between readings of /proc")
    parser.add_argument("command", nargs="*", default=["make", "test"])
    args = parser.parse_args()

    me = os.getpid()
    already = {pid: reading for pid in pids() if (reading := cpu_and_start(pid))}  # count only what they add
    seen: dict[tuple[int, str], Seen] = {}
    started, wall = os.times(), time.monotonic()
    child = subprocess.Popen(args.command, cwd=REPO)
    while True:
        for pid in pids():
            if pid == me or (reading := cpu_and_start(pid)) is None:
                continue
            cpu, start = reading
            key = (pid, start)
            if key not in seen:
                before = already.get(pid)
                seen[key] = Seen(kind_of(pid), before[0] if before and before[1] == start else 0.0, cpu)
            seen[key].last_s = cpu
        if child.poll() is not None:
            break
        time.sleep(args.interval)
    wall = time.monotonic() - wall
    ended = os.times()

    totals: dict[str, list[float]] = {}
    for process in seen.values():
        total = totals.setdefault(process.kind, [0.0, 0])
        total[0] += process.last_s - process.first_s
        total[1] += 1
    sampled = sum(cpu for cpu, _ in totals.values())
    waited = (ended.children_user + ended.children_system) - (started.children_user + started.children_system)
    print(f"\n{' '.join(args.command)}: exit {child.returncode}; wall {wall:.0f} s; CPU {sampled:.0f} s by /proc "
          f"({waited:.0f} s of it in processes waited for); floor on 2 cores {sampled / 2:.0f} s")
    print("\n  CPU s  processes  kind")
    for name, (cpu, count) in sorted(totals.items(), key=lambda kv: -kv[1][0]):
        if cpu >= 0.5:
            print(f"{cpu:7.1f}  {int(count):9d}  {name}")
    return child.returncode


if __name__ == "__main__":
    sys.exit(main())
