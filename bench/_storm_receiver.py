"""The receiver under test for alert_storm.py, in its own process (so the load generator does not share its GIL).

Runs the real intake app under uvicorn with the given store URL; runs are "started" by a starter that returns
a new id per incident (run creation in Prefect is measured by alert_to_action.py, not here).
"""

from __future__ import annotations

import sys
import uuid
from typing import Any

import uvicorn

from remediation.intake import create_app
from remediation.settings import Settings
from remediation.store import Store


class CountingStarter:
    async def start(self, deployment: str, parameters: dict[str, Any], idempotency_key: str) -> str:
        return str(uuid.uuid5(uuid.NAMESPACE_URL, idempotency_key))


def main() -> None:
    database_url, port, token = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    settings = Settings(database_url=database_url, intake_token=token)
    store = Store(database_url)
    store.migrate()
    app = create_app(settings, store, CountingStarter())
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", access_log=False)


if __name__ == "__main__":
    main()
