"""The receiver under test for alert_storm.py, in its own process (so the load generator does not share its GIL).

Runs the real intake app under uvicorn with the given store URL, served as the stack serves it (h11 with the read
deadlines of remediation.intake.deadlines), in ``workers`` uvicorn worker processes (default 1); runs are "started"
by a starter that returns the same id for an incident whichever process asks (run creation in Prefect is measured by
alert_to_action.py, not here).

    python bench/_storm_receiver.py DATABASE_URL PORT TOKEN [WORKERS]
"""

from __future__ import annotations

import os
import sys
import uuid
from pathlib import Path
from typing import Any

import uvicorn
from starlette.applications import Starlette

from remediation.intake import create_app
from remediation.intake.deadlines import ReadDeadlineH11Protocol, uvicorn_config
from remediation.settings import Settings
from remediation.store import Store

_URL, _TOKEN = "STORM_DATABASE_URL", "STORM_TOKEN"


class CountingStarter:
    async def start(self, deployment: str, parameters: dict[str, Any], idempotency_key: str) -> str:
        return str(uuid.uuid5(uuid.NAMESPACE_URL, idempotency_key))


def build() -> Starlette:
    """The app of one worker process (uvicorn imports this by name in each worker)."""
    database_url, token = os.environ[_URL], os.environ[_TOKEN]
    return create_app(Settings(database_url=database_url, intake_token=token), Store(database_url), CountingStarter())


def main() -> None:
    database_url, port, token = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    workers = int(sys.argv[4]) if len(sys.argv) > 4 else 1
    os.environ[_URL], os.environ[_TOKEN] = database_url, token
    store = Store(database_url)
    store.migrate()
    store.dispose()
    if workers == 1:
        # Served as remediation.orchestration.stack serves it: uvicorn's h11 protocol with the read deadline
        # (remediation.intake.deadlines), not whichever parser uvicorn would pick (httptools when installed).
        settings = Settings(database_url=database_url, intake_token=token)
        config = uvicorn_config(build(), settings, host="127.0.0.1", port=port, log_level="warning", access_log=False)
        uvicorn.Server(config).run()
    else:
        # The same protocol by its importable class (spawned workers unpickle it by name), whose deadline is the
        # settings' default (10 s).
        uvicorn.run("_storm_receiver:build", factory=True, app_dir=str(Path(__file__).parent), workers=workers,
                    host="127.0.0.1", port=port, log_level="warning", access_log=False, http=ReadDeadlineH11Protocol)


if __name__ == "__main__":
    main()
