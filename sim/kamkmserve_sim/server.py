"""Run the simulator as a real HTTP server: in a background thread (tests, demo) or in the foreground (CLI)."""

from __future__ import annotations

import signal
import socket
import threading
import time
from types import FrameType, TracebackType

import uvicorn

from kamkmserve_sim.app import create_app
from kamkmserve_sim.config import SimConfig
from kamkmserve_sim.state import SimState


class _Server(uvicorn.Server):
    """Remembers which signal stopped it (for the app's shutdown line) and exits 0, as the app does."""

    def __init__(self, config: uvicorn.Config, sim: SimState) -> None:
        super().__init__(config)
        self._sim = sim

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        self._sim.shutdown_signal = signal.Signals(sig).name
        # Deliberately not recorded for re-raising after shutdown: the real app exits 0 on SIGTERM/SIGINT.
        if self.should_exit and sig == signal.SIGINT:
            self.force_exit = True
        else:
            self.should_exit = True


def _bind(host: str, port: int) -> socket.socket:
    # Bound before the app starts so the start-up banner can name the real port even when port=0.
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.set_inheritable(True)
    return sock


def _uvicorn(config: SimConfig, sim: SimState) -> _Server:
    app = create_app(config, state=sim)
    uv_config = uvicorn.Config(
        app, http="h11", loop="asyncio", lifespan="on", log_level="warning", access_log=False,
        server_header=False,
        date_header=False,  # our responses carry their own Date, placed and cased like Node's
        timeout_keep_alive=5,  # matches the app's "Keep-Alive: timeout=5"
    )
    return _Server(uv_config, sim)


class SimServer:
    """``with SimServer(SimConfig()) as sim: httpx.get(sim.url + "/monitoring/health")``."""

    def __init__(self, config: SimConfig | None = None) -> None:
        self.config = config or SimConfig()
        self.url = ""
        self.state: SimState | None = None
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    def start(self, timeout_s: float = 10.0) -> SimServer:
        if self._thread is not None:
            raise RuntimeError("SimServer already started")
        sock = _bind(self.config.host, self.config.port)
        port = sock.getsockname()[1]
        try:
            self.config = self.config.model_copy(update={"port": port})
            self.state = SimState(self.config)
            self._server = _uvicorn(self.config, self.state)
            self._thread = threading.Thread(target=self._server.run, kwargs={"sockets": [sock]},
                                            name=f"kamkmserve-sim-{port}", daemon=True)
            self._thread.start()
            deadline = time.monotonic() + timeout_s
            while not self._server.started:
                if not self._thread.is_alive() or time.monotonic() > deadline:
                    raise RuntimeError("the simulator did not start")
                time.sleep(0.01)
        except BaseException:
            self.stop()
            sock.close()
            raise
        host = f"[{self.config.host}]" if ":" in self.config.host else self.config.host
        self.url = f"http://{host}:{port}"
        return self

    def stop(self, timeout_s: float = 10.0) -> None:
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout_s)
        self._thread = None
        self._server = None

    def __enter__(self) -> SimServer:
        return self.start() if self._thread is None else self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()


def run_forever(config: SimConfig) -> None:
    """Serve in the foreground until SIGINT/SIGTERM, printing the app's output like ``next start`` does."""
    config = config.model_copy(update={"echo_logs": True})
    sock = _bind(config.host, config.port)
    config = config.model_copy(update={"port": sock.getsockname()[1]})
    sim = SimState(config)
    _uvicorn(config, sim).run(sockets=[sock])
