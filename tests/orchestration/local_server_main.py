"""``python -m tests.orchestration.local_server_main HOME [PORT]``: start the local Prefect server as
``remediate serve`` does, print ``SERVER <pid> <api url>`` and wait to be killed (the test SIGKILLs this process)."""

from __future__ import annotations

import logging
import sys
import threading
from pathlib import Path

from remediation.orchestration.stack import start_local_prefect_server

if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s %(message)s")
    home = Path(sys.argv[1])
    port = int(sys.argv[2]) if len(sys.argv) > 2 else None
    server = start_local_prefect_server(home, database_url=f"sqlite+aiosqlite:///{home / 'prefect.db'}", port=port)
    print(f"SERVER {server.process.pid} {server.api_url}", flush=True)
    threading.Event().wait()
