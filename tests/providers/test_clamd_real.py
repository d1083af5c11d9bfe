"""The clamd client against Debian's real clamd: EICAR is FOUND, a benign PNG is OK, a dead daemon is unknown."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from remediation.providers.clamd import ClamdAntivirus, parse_scan_reply
from tests.helpers.clamd import EICAR, MARKER, TINY_PNG, Clamd, free_port, running_clamd


@pytest.fixture(scope="module")
def clamd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Clamd]:
    with running_clamd(tmp_path_factory.mktemp("clamd")) as daemon:
        yield daemon


@pytest.fixture
def av(clamd: Clamd) -> ClamdAntivirus:
    return ClamdAntivirus(clamd.host, clamd.port, timeout_s=10)


async def test_clamd_answers_ping_and_version(av: ClamdAntivirus) -> None:
    assert await av.ping() is True
    version = await av.version()
    assert version is not None and version.startswith("ClamAV ")


async def test_the_eicar_test_file_is_found(av: ClamdAntivirus) -> None:
    verdict = await av.scan(EICAR)
    assert verdict.status == "found" and not verdict.clean
    assert verdict.signature is not None and "EICAR" in verdict.signature


async def test_a_marker_inside_a_bigger_file_is_found_across_stream_chunks(av: ClamdAntivirus) -> None:
    payload = TINY_PNG + b"\0" * (64 * 1024 - 10) + MARKER + b"\0" * 1000  # the marker straddles two chunks
    verdict = await av.scan(payload)
    assert verdict.status == "found"


async def test_a_benign_png_is_ok(av: ClamdAntivirus) -> None:
    verdict = await av.scan(TINY_PNG)
    assert verdict.status == "ok" and verdict.clean


async def test_a_stream_over_the_daemon_limit_is_an_error_not_a_pass(av: ClamdAntivirus) -> None:
    verdict = await av.scan(b"\0" * (2 * 1024 * 1024))  # StreamMaxLength is 1M in the test config
    assert verdict.status in {"error", "unavailable"} and not verdict.clean


async def test_reload_is_acknowledged_and_scanning_still_works(av: ClamdAntivirus) -> None:
    assert await av.reload() is True
    assert (await av.scan(EICAR)).status == "found"


async def test_a_daemon_that_is_not_there_is_unavailable_never_clean() -> None:
    dead = ClamdAntivirus("127.0.0.1", free_port(), timeout_s=2)
    assert await dead.ping() is False
    assert await dead.version() is None
    verdict = await dead.scan(TINY_PNG)
    assert verdict.status == "unavailable" and not verdict.clean and "clamd at 127.0.0.1" in verdict.detail
    assert await dead.reload() is False


@pytest.mark.parametrize(("reply", "status"), [
    ("stream: OK", "ok"), ("stream: Test.EICAR.HDB.UNOFFICIAL FOUND", "found"),
    ("INSTREAM size limit exceeded. ERROR", "error"), ("", "error"), ("garbage", "error"),
])
def test_scan_replies_are_read_strictly(reply: str, status: str) -> None:
    assert parse_scan_reply(reply).status == status

