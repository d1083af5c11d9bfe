"""Run the real Prometheus Alertmanager binary (Debian package) on 127.0.0.1 for a test."""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

from tests.helpers import local_http
from tests.helpers.services import require_service

BINARY = "prometheus-alertmanager"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@dataclass
class Alertmanager:
    url: str
    process: subprocess.Popen[bytes]

    def fire(self, labels: dict[str, str], annotations: dict[str, str] | None = None) -> None:
        self._post([{"labels": labels, "annotations": annotations or {},
                     "startsAt": datetime.now(UTC).isoformat(), "generatorURL": "http://prometheus.test/graph"}])

    def resolve(self, labels: dict[str, str]) -> None:
        past = datetime.now(UTC).isoformat()
        self._post([{"labels": labels, "startsAt": past, "endsAt": past}])

    def _post(self, alerts: list[dict[str, Any]]) -> None:
        local_http.post(f"{self.url}/api/v2/alerts", json=alerts, timeout=5).raise_for_status()


def config_yaml(webhook_url: str, token: str) -> str:
    return f"""route:
  receiver: remediation
  group_by: ['alertname', 'service']
  group_wait: 1s
  group_interval: 3s
  repeat_interval: 6s
receivers:
  - name: remediation
    webhook_configs:
      - url: {webhook_url}
        send_resolved: true
        http_config:
          authorization:
            type: Bearer
            credentials: {token}
"""


@contextmanager
def running_alertmanager(tmp: Path, webhook_url: str, token: str) -> Iterator[Alertmanager]:
    binary = shutil.which(BINARY)
    require_service("alertmanager", binary is not None, f"{BINARY} is not installed (apt-get install {BINARY})")
    assert binary is not None
    config = tmp / "alertmanager.yml"
    config.write_text(config_yaml(webhook_url, token))
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    log = (tmp / "alertmanager.log").open("wb")
    process = subprocess.Popen(
        [binary, f"--config.file={config}", f"--storage.path={tmp / 'am-data'}",
         f"--web.listen-address=127.0.0.1:{port}", "--cluster.listen-address=", f"--web.external-url={url}"],
        stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                if local_http.get(f"{url}/-/ready", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"alertmanager did not start: {(tmp / 'alertmanager.log').read_text()[-2000:]}")
            time.sleep(0.2)
        yield Alertmanager(url=url, process=process)
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
        log.close()
