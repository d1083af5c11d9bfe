"""``python -m remediation.orchestration.parent_death PARENT_PID -- COMMAND...``: run COMMAND so that it dies with
``PARENT_PID``, even when that process is SIGKILLed.

Why a wrapper rather than ``Popen(preexec_fn=...)``: ``remediate serve`` has threads when it starts its Prefect server
(sentry-sdk's worker, logging), and Python documents ``preexec_fn`` as unsafe with threads (the forked child may
deadlock on a lock another thread held). Here the setting is made by a fresh, single-threaded interpreter that then
replaces itself with COMMAND, so no extra process stays behind on Linux.

* Linux: ``prctl(PR_SET_PDEATHSIG, SIGTERM)``, then ``execv`` COMMAND. The kernel keeps the setting across ``execv``
  and sends SIGTERM when the parent exits, however it exits. The parent must not have died already (the signal is
  only armed for a parent alive at the time of the call), hence the ``getppid`` check after arming it.
  One caveat, from the kernel: "parent" is the *thread* that forked us, so the caller must start COMMAND from a
  thread that lives as long as it does (``run_stack`` uses the main thread).
* Elsewhere (no ``prctl``): this interpreter stays as a watchdog. It runs COMMAND as a child in the same process group
  (so the caller's ``killpg`` still reaches both), checks once a second whether its parent changed (it is then
  re-parented to init or a subreaper), and if so terminates COMMAND and exits.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import signal
import subprocess
import sys

PR_SET_PDEATHSIG = 1  # <linux/prctl.h>
WATCHDOG_POLL_S = 1.0


def command(parent_pid: int, argv: list[str]) -> list[str]:
    """The argv that runs ``argv`` under this wrapper, bound to ``parent_pid`` (normally ``os.getpid()``)."""
    return [sys.executable, "-m", __name__, str(parent_pid), "--", *argv]


def arm_parent_death_signal(sig: int = signal.SIGTERM) -> bool:
    """Ask the kernel to send ``sig`` to this process when its parent dies; False where that is not available."""
    if not sys.platform.startswith("linux"):
        return False
    libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
    return bool(libc.prctl(PR_SET_PDEATHSIG, int(sig), 0, 0, 0) == 0)


def _watch(parent_pid: int, argv: list[str]) -> int:
    child = subprocess.Popen(argv)

    def forward(sig: int, _frame: object) -> None:
        child.send_signal(sig)

    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, forward)
    while True:
        try:
            return child.wait(WATCHDOG_POLL_S)
        except subprocess.TimeoutExpired:
            pass
        if os.getppid() != parent_pid:
            child.terminate()
            try:
                return child.wait(15)
            except subprocess.TimeoutExpired:
                child.kill()
                return child.wait()


def main(args: list[str]) -> int:
    if len(args) < 3 or args[1] != "--":
        print("usage: python -m remediation.orchestration.parent_death PARENT_PID -- COMMAND...", file=sys.stderr)
        return 2
    parent_pid, argv = int(args[0]), args[2:]
    armed = arm_parent_death_signal()
    if os.getppid() != parent_pid:  # the parent died before (or while) the signal was armed: nobody wants us
        return 1
    if not armed:
        return _watch(parent_pid, argv)
    sys.stdout.flush()
    sys.stderr.flush()
    os.execvp(argv[0], argv)
    return 127  # not reached: execvp either replaces this process or raises


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
