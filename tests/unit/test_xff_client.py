"""The client behind a raw x-forwarded-for chain is its right-most untrusted hop; spoofed or garbled chains name
nobody rather than a proxy, and never a never-block address."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from remediation.policy import DEFAULT_NEVER_BLOCK
from remediation.providers.xff import client_address, parse_entry

TRUSTED = DEFAULT_NEVER_BLOCK


def test_the_client_is_the_first_public_hop_from_the_right() -> None:
    assert client_address("203.0.113.7, 10.0.0.1", TRUSTED).address == "203.0.113.7"
    assert client_address("203.0.113.7", TRUSTED).address == "203.0.113.7"


def test_a_spoofed_left_entry_is_ignored() -> None:
    # The client claimed 1.2.3.4; our LB saw it come from 198.51.100.9.
    assert client_address("1.2.3.4, 198.51.100.9, 10.0.0.1", TRUSTED).address == "198.51.100.9"


def test_ports_and_bracketed_ipv6_are_understood() -> None:
    assert client_address("203.0.113.7:5555, 10.0.0.1", TRUSTED).address == "203.0.113.7"
    assert client_address("[2001:db8::7]:443, 10.0.0.1", TRUSTED).address == "2001:db8::7"
    assert client_address("2001:db8::7", TRUSTED).address == "2001:db8::7"


def test_garbage_in_the_trusted_part_names_nobody() -> None:
    found = client_address("203.0.113.7, not-an-ip, 10.0.0.1", TRUSTED)
    assert found.address is None and "unparseable" in found.reason


def test_garbage_left_of_the_client_does_not_matter() -> None:
    assert client_address("<script>, 203.0.113.7, 10.0.0.1", TRUSTED).address == "203.0.113.7"


def test_internal_traffic_and_missing_headers_name_nobody() -> None:
    assert client_address("10.0.0.2, 10.0.0.1", TRUSTED).address is None
    assert client_address(None, TRUSTED).address is None
    assert client_address("  ", TRUSTED).address is None
    assert client_address("unknown", TRUSTED).address is None


def test_entries_parse_strictly() -> None:
    assert parse_entry(" 203.0.113.7 ") is not None
    assert parse_entry("203.0.113.300") is None
    assert parse_entry("") is None


@given(st.lists(st.one_of(st.ip_addresses().map(str), st.text(max_size=12)), min_size=0, max_size=6))
def test_whatever_the_chain_the_answer_is_never_a_trusted_address(entries: list[str]) -> None:
    import ipaddress

    found = client_address(", ".join(entries), TRUSTED)
    if found.address is not None:
        address = ipaddress.ip_address(found.address)
        assert not any(address.version == n.version and address in n
                       for n in (ipaddress.ip_network(c) for c in TRUSTED))
