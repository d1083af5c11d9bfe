"""Run Debian's real clamd on 127.0.0.1 with locally made test signatures.

No network: docs/reference/integrations.md §7.1.
"""

from __future__ import annotations

import hashlib
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from remediation.orchestration.stack import free_port
from tests.helpers.services import require_service

BINARY = "clamd"
# The EICAR test string, assembled from two halves so that this source file is not itself flagged.
EICAR = (b"X5O!P%@AP[4\\PZX54(P^)7CC)7}$" + b"EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*")
MARKER = b"REMEDIATE-TEST-MALWARE-MARKER-" + b"7f3a"
# The smallest PNG the app accepts: signature, IHDR, IDAT, IEND of a 1x1 image.
TINY_PNG = bytes.fromhex(
    "89504e470d0a1a0a0000000d49484452000000010000000108060000001f15c489"
    "0000000d49444154789c6360000002000001e221bc330000000049454e44ae426082")


@dataclass
class Clamd:
    host: str
    port: int
    process: subprocess.Popen[bytes]
    database_dir: Path

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=5)


def _ping(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=1) as sock:
            sock.sendall(b"zPING\0")
            return sock.recv(16).startswith(b"PONG")
    except OSError:
        return False


@contextmanager
def running_clamd(root: Path) -> Iterator[Clamd]:
    """Start clamd with the EICAR hash signature and a marker signature; stop it afterwards."""
    binary = shutil.which(BINARY) or (f"/usr/sbin/{BINARY}" if Path(f"/usr/sbin/{BINARY}").exists() else None)
    require_service("clamd", binary is not None, "the clamav-daemon package is not installed")
    assert binary is not None
    database = root / "db"
    database.mkdir(parents=True, exist_ok=True)
    (database / "test.hdb").write_text(f"{hashlib.md5(EICAR).hexdigest()}:{len(EICAR)}:Test.EICAR.HDB\n")
    (database / "test.ndb").write_text(f"Test.Remediator.Marker:0:*:{MARKER.hex()}\n")
    (root / "tmp").mkdir(exist_ok=True)
    port = free_port()
    config = root / "clamd.conf"
    config.write_text("\n".join([
        "Foreground yes", f"TCPSocket {port}", "TCPAddr 127.0.0.1", f"DatabaseDirectory {database}",
        "StreamMaxLength 1M", "MaxThreads 2", "User root", f"LogFile {root / 'clamd.log'}",
        f"PidFile {root / 'clamd.pid'}", f"TemporaryDirectory {root / 'tmp'}", "",
    ]))
    process = subprocess.Popen([binary, f"--config-file={config}"], stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
    clamd = Clamd("127.0.0.1", port, process, database)
    try:
        deadline = time.monotonic() + 30
        while not _ping("127.0.0.1", port):
            if process.poll() is not None or time.monotonic() > deadline:
                log = (root / "clamd.log").read_text() if (root / "clamd.log").exists() else ""
                require_service("clamd", False, f"clamd did not answer PING (exit {process.poll()}): {log[-500:]}")
            time.sleep(0.05)
        yield clamd
    finally:
        clamd.stop()
