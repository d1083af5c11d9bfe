"""The lifecycle every local HTTP fake shares: a threaded server on 127.0.0.1, an ephemeral port, start/stop.

Subclasses implement :meth:`LocalHttpServer._dispatch` (read the request, answer it); handlers run on server
threads, so shared state goes under ``self.lock``.
"""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Self


class LocalHttpServer:
    poll_interval_s = 0.05

    def __init__(self) -> None:
        self.lock = threading.RLock()
        self._server: ThreadingHTTPServer | None = None
        self.port = 0
        # Where to listen: any 127.0.0.0/8 address is loopback on Linux (a fake EC2 instance's private IP), and
        # bind_port 0 takes a free port.
        self.host = "127.0.0.1"
        self.bind_port = 0

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self) -> Self:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def _serve(self) -> None:
                fake._dispatch(self)

            do_GET = do_POST = do_PATCH = do_PUT = do_DELETE = _serve

            def log_message(self, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer((self.host, self.bind_port), Handler)
        self.port = self._server.server_address[1]
        threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": self.poll_interval_s},
                         daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _dispatch(self, handler: BaseHTTPRequestHandler) -> None:
        raise NotImplementedError
