"""The receiver in a process of its own, for tests that count its file descriptors.

``python receiver_process.py DATABASE_URL READ_TIMEOUT_S TOKEN``: migrates the store, binds 127.0.0.1 on a free
port, prints ``PORT <n>`` on stdout, then serves the real app under uvicorn with the intake read deadlines
(``remediation.intake.deadlines.uvicorn_config``) until SIGTERM/SIGINT. Runs are "started" by a starter that
returns a new id, so the only descriptors it holds are the store's, the listening socket's and its clients'.
"""

from __future__ import annotations

import socket
import sys
import uuid
from typing import Any

import uvicorn

from remediation.intake import create_app
from remediation.intake.deadlines import uvicorn_config
from remediation.settings import Settings
from remediation.store import Store


class NewIdStarter:
    async def start(self, deployment: str, parameters: dict[str, Any], idempotency_key: str) -> str:
        return str(uuid.uuid5(uuid.NAMESPACE_URL, idempotency_key))


def main() -> None:
    database_url, read_timeout_s, token = sys.argv[1], float(sys.argv[2]), sys.argv[3]
    settings = Settings(database_url=database_url, intake_token=token, sentry_client_secret="not-used",
                        intake_read_timeout_s=read_timeout_s)
    store = Store(database_url)
    store.migrate()
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", 0))
    print(f"PORT {listener.getsockname()[1]}", flush=True)
    config = uvicorn_config(create_app(settings, store, NewIdStarter()), settings, log_level="warning",
                            access_log=False)
    uvicorn.Server(config).run(sockets=[listener])


if __name__ == "__main__":
    main()
