"""``python -m tests.orchestration.slot_holder_main SERVICE``: hold SERVICE's remediation slot the way
``remediate demo`` does (the runbook in a thread, the main thread waiting on it), print ``HELD`` once it is held,
and wait to be interrupted (SIGINT) or killed."""

from __future__ import annotations

import asyncio
import sys
import threading

from remediation.orchestration.limits import service_lock


async def hold(service: str, stop: threading.Event) -> None:
    async with service_lock(service, timeout_s=60):
        print("HELD", flush=True)
        while not stop.is_set():
            await asyncio.sleep(0.1)


if __name__ == "__main__":
    stop = threading.Event()
    worker = threading.Thread(target=asyncio.run, args=(hold(sys.argv[1], stop),), daemon=True)
    worker.start()
    while worker.is_alive():
        worker.join(0.2)  # a Ctrl-C lands here, as in the demo; the thread still holds the slot
