"""The WAF block list's LockToken protocol and TTL bookkeeping, on moto (whose optimistic lock is faithful) and on
recorded answers for the one case moto cannot stage: our own update landed but its answer was lost."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from remediation.providers.aws.params import SsmParameters
from remediation.providers.aws.session import AwsConfig, AwsError, AwsSession
from remediation.providers.aws.waf import MAX_CONFLICTS, WafBlocks
from remediation.providers.platform import PlatformError
from tests.contracts import awskit
from tests.helpers.moto_server import REGION, MotoServer
from tests.providers.aws.stubkit import offline_session, stubbed


class Interfering(AwsSession):
    """A session whose WAF updates race another writer (``times`` of them), or fail outright (``fail``)."""

    def __init__(self, moto: MotoServer, times: int = 0, fail: bool = False) -> None:
        super().__init__(AwsConfig(region=REGION, endpoint_url=moto.url, max_attempts=1))
        self.moto, self.times, self.fail = moto, times, fail
        self.updates: list[list[str]] = []

    async def call(self, service: str, operation: str, /, *, retries: bool = True, **params: Any) -> dict[str, Any]:
        if operation == "update_ip_set":
            self.updates.append(list(params["Addresses"]))
            if self.fail:
                raise AwsError("wafv2", operation, "provider", "500", "internal error")
            if self.times:
                self.times -= 1
                waf = self.moto.client("wafv2")
                got = waf.get_ip_set(Name=params["Name"], Scope="REGIONAL", Id=params["Id"])
                waf.update_ip_set(Name=params["Name"], Scope="REGIONAL", Id=params["Id"], LockToken=got["LockToken"],
                                  Addresses=[*got["IPSet"]["Addresses"], f"192.0.2.{len(self.updates)}/32"])
        return await super().call(service, operation, retries=retries, **params)


def blocks_on(session: AwsSession, clock: list[datetime] | None = None) -> WafBlocks:
    moment = clock or [datetime.now(UTC)]
    return WafBlocks(session, SsmParameters(session, awskit.PREFIX), awskit.IP_SET, now=lambda: moment[0])


async def test_a_conflicting_writer_makes_us_read_again_and_both_changes_survive(moto: MotoServer) -> None:
    awskit.seed_waf(moto)
    session = Interfering(moto, times=1)
    await blocks_on(session).block("ip", "203.0.113.7", 600, "malware uploads")
    assert len(session.updates) == 2, "the stale update was refused (WAFOptimisticLockException) and redone"
    assert awskit.waf_addresses(moto) == {"192.0.2.1/32", "203.0.113.7/32"}


async def test_a_set_that_keeps_changing_is_given_up_after_a_bound(moto: MotoServer) -> None:
    awskit.seed_waf(moto)
    session = Interfering(moto, times=100)
    with pytest.raises(PlatformError, match=f"gave up after {MAX_CONFLICTS} lock conflicts"):
        await blocks_on(session).block("ip", "203.0.113.7", 600, "malware uploads")
    assert len(session.updates) == MAX_CONFLICTS
    assert "203.0.113.7/32" not in awskit.waf_addresses(moto)


async def test_the_expiry_is_written_before_the_block_so_a_failure_leaves_no_endless_block(moto: MotoServer) -> None:
    awskit.seed_waf(moto)
    clock = [datetime.now(UTC)]
    with pytest.raises(AwsError):
        await blocks_on(Interfering(moto, fail=True), clock).block("ip", "203.0.113.7", 600, "malware uploads")
    assert awskit.waf_addresses(moto) == set()
    assert awskit.ssm_value(moto, f"{awskit.PREFIX}/blocks/ip/203.0.113.7_32") is not None
    healthy = blocks_on(AwsSession(AwsConfig(region=REGION, endpoint_url=moto.url)), clock)
    assert await healthy.blocks() == []
    clock[0] += timedelta(seconds=601)
    assert await healthy.blocks() == []
    assert awskit.ssm_value(moto, f"{awskit.PREFIX}/blocks/ip/203.0.113.7_32") is None, "the stale record is swept"


async def test_an_entry_someone_added_by_hand_is_listed_without_expiry_and_never_expired(moto: MotoServer) -> None:
    set_id = awskit.seed_waf(moto)
    waf = moto.client("wafv2")
    token = waf.get_ip_set(Name=awskit.IP_SET, Scope="REGIONAL", Id=set_id)["LockToken"]
    waf.update_ip_set(Name=awskit.IP_SET, Scope="REGIONAL", Id=set_id, LockToken=token, Addresses=["192.0.2.50/32"],
                      Description="remediation block list")
    clock = [datetime.now(UTC)]
    adapter = blocks_on(AwsSession(AwsConfig(region=REGION, endpoint_url=moto.url)), clock)
    await adapter.block("ip", "203.0.113.7", 60, "ours")
    clock[0] += timedelta(days=30)
    (kept,) = await adapter.blocks()
    assert (kept.value, kept.expires_at, kept.reason) == ("192.0.2.50", None, "")
    described = waf.get_ip_set(Name=awskit.IP_SET, Scope="REGIONAL", Id=set_id)["IPSet"]
    assert described["Description"] == "remediation block list", "an update keeps the set's description"


async def test_what_the_ip_set_cannot_hold_is_refused_before_any_change(moto: MotoServer) -> None:
    awskit.seed_waf(moto)
    adapter = blocks_on(AwsSession(AwsConfig(region=REGION, endpoint_url=moto.url)))
    with pytest.raises(PlatformError, match="identity provider"):
        await adapter.block("user", "user_2abc", 600, "abuse")
    with pytest.raises(PlatformError, match="holds IPV4 addresses"):
        await adapter.block("ip", "2001:db8::1", 600, "v6")
    with pytest.raises(PlatformError, match="not an IP address"):
        await adapter.block("ip", "203.0.113.300", 600, "typo")  # moto would store it (integrations §3.3)
    assert awskit.waf_addresses(moto) == set()
    assert await adapter.unblock("user", "user_2abc") is False


async def test_a_lock_conflict_after_our_own_update_landed_does_not_update_again() -> None:
    """Recorded: the update reached WAF, its answer was lost, the retry met the new token. The re-read shows the
    address in the set, so nothing more is written (no second action)."""
    session = offline_session()
    ip_set = {"Name": awskit.IP_SET, "Id": "set-1", "ARN": "arn:aws:wafv2:us-east-1:123456789012:regional/ipset/x",
              "IPAddressVersion": "IPV4", "Description": "remediation block list"}
    get = {"Name": awskit.IP_SET, "Scope": "REGIONAL", "Id": "set-1"}
    with stubbed(session, "wafv2") as waf, stubbed(session, "ssm") as ssm:
        waf.add_response("get_ip_set", {"IPSet": {**ip_set, "Addresses": []}, "LockToken": "t1"}, get)
        ssm.add_response("get_parameters_by_path", {"Parameters": []}, None)
        ssm.add_response("put_parameter", {"Version": 1}, None)
        waf.add_response("get_ip_set", {"IPSet": {**ip_set, "Addresses": []}, "LockToken": "t1"}, get)
        waf.add_client_error("update_ip_set", service_error_code="WAFOptimisticLockException", http_status_code=400)
        waf.add_response("get_ip_set", {"IPSet": {**ip_set, "Addresses": ["203.0.113.7/32"]}, "LockToken": "t2"},
                         get)
        adapter = WafBlocks(session, SsmParameters(session, awskit.PREFIX), awskit.IP_SET, ip_set_id="set-1")
        block = await adapter.block("ip", "203.0.113.7", 600, "malware uploads")
    assert block.value == "203.0.113.7"


async def test_credentials_that_may_only_read_list_an_overdue_block_as_still_in_force(moto: MotoServer) -> None:
    awskit.seed_waf(moto)
    clock = [datetime.now(UTC)]
    await blocks_on(AwsSession(AwsConfig(region=REGION, endpoint_url=moto.url)), clock).block(
        "ip", "203.0.113.7", 60, "malware uploads")
    clock[0] += timedelta(seconds=61)
    reader = blocks_on(Interfering(moto, fail=True), clock)  # every update refused
    (overdue,) = await reader.blocks()
    assert overdue.value == "203.0.113.7" and overdue.expires_at is not None and overdue.expires_at < clock[0]
    assert awskit.waf_addresses(moto) == {"203.0.113.7/32"}, "still blocked at the edge, and listed as such"


async def test_listing_is_a_pure_read_that_leaves_expiry_to_the_sweep(moto: MotoServer) -> None:
    awskit.seed_waf(moto)
    clock = [datetime.now(UTC)]
    adapter = blocks_on(AwsSession(AwsConfig(region=REGION, endpoint_url=moto.url)), clock)
    await adapter.block("ip", "203.0.113.7", 60, "malware uploads")
    clock[0] += timedelta(seconds=61)
    assert [b.value for b in await adapter.listing()] == ["203.0.113.7"]
    assert awskit.waf_addresses(moto) == {"203.0.113.7/32"}
    assert await adapter.blocks() == [] and awskit.waf_addresses(moto) == set()
