"""The approver rules (remediation.approvers) and their configuration in remediate.toml ([approvers.NAME] tables,
names-only lists, [min_approvers])."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qs, unquote, urlsplit

import pyotp
import pytest

from remediation import approvers
from remediation.approvers import ApproverFactor
from remediation.config_file import ConfigError
from remediation.settings import Settings
from tests.unit.conftest import Write

SECRET = "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP"
T0 = datetime(2026, 3, 1, 12, 0, 10, tzinfo=UTC)  # 10 s into a 30 s step


# -- how many must agree ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("rules", "severity", "risk", "expected"), [
    # defaults: the two-person rule for a destructive step of a SEV-1 incident, one person otherwise
    ({}, "sev1", "destructive", 2),
    ({}, "sev2", "destructive", 1),
    ({}, "sev1", "reversible", 1),
    ({}, "sev4", "observe", 1),
    # overrides of the default, both ways
    ({"sev1:destructive": 3}, "sev1", "destructive", 3),
    ({"sev1:destructive": 1}, "sev1", "destructive", 1),
    ({"sev2:destructive": 2}, "sev2", "destructive", 2),
    ({"sev2:destructive": 2}, "sev1", "destructive", 2),
    ({"sev2:destructive": 2}, "sev3", "destructive", 1),
    # wildcards, most specific first: severity:risk, severity:*, *:risk, *:*
    ({"sev2:*": 2}, "sev2", "reversible", 2),
    ({"sev2:*": 2}, "sev3", "reversible", 1),
    ({"*:destructive": 2}, "sev3", "destructive", 2),
    ({"*:*": 2}, "sev4", "observe", 2),
    ({"*:*": 3, "sev2:*": 2}, "sev2", "observe", 2),
    ({"*:*": 3, "*:reversible": 2}, "sev3", "reversible", 2),
    ({"sev2:*": 3, "*:destructive": 2}, "sev2", "destructive", 3),
    ({"sev3:*": 3, "sev3:observe": 1}, "sev3", "observe", 1),
    # any rule of the operator's that matches beats the built-in default, however specific the default is
    ({"*:destructive": 3}, "sev1", "destructive", 3),
    # never fewer than one person
    ({"sev2:destructive": 0}, "sev2", "destructive", 1),
    ({"*:*": -4}, "sev4", "observe", 1),
])  # fmt: skip
def test_needed_takes_the_most_specific_rule_over_the_defaults(
        rules: dict[str, int], severity: str, risk: str, expected: int) -> None:
    assert approvers.needed(rules, severity, risk) == expected


# -- names ------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("name", "valid"), [
    ("alice", True),
    ("a", True),
    ("0day", True),
    ("Alice.Smith", True),
    ("alice_s", True),
    ("al-ice", True),
    ("alice@kamkm.example", True),
    ("a" * approvers.NAME_MAX, True),
    ("", False),
    ("a" * (approvers.NAME_MAX + 1), False),
    (".alice", False),
    ("-alice", False),
    ("_alice", False),
    ("@alice", False),
    ("alice smith", False),
    ("alice\n", False),
    ("a" * approvers.NAME_MAX + "\n", False),
    ("alice\nbob", False),
    ("alice\t", False),
    (" alice", False),
    ("alicé", False),
    ("alice/bob", False),
    ("alice:bob", False),
    ("[alice]", False),
    ("alice\x00", False),
])  # fmt: skip
def test_valid_name_accepts_short_identifiers_only(name: str, valid: bool) -> None:
    assert approvers.valid_name(name) is valid


# -- TOTP -------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("code_offset_s", "counter_offset"), [
    (0, 0), (-30, -1), (30, 1), (-60, None), (60, None),
    (-10, 0), (-11, -1), (19, 0), (20, 1), (-40, -1), (-41, None), (49, 1), (50, None),  # around the step edges
])  # fmt: skip
def test_matching_counter_accepts_the_code_of_now_and_of_one_step_either_side_only(
        code_offset_s: int, counter_offset: int | None) -> None:
    now_counter = int(T0.timestamp()) // approvers.TOTP_INTERVAL_S
    code = approvers.code_at(SECRET, T0 + timedelta(seconds=code_offset_s))
    expected = None if counter_offset is None else now_counter + counter_offset
    assert approvers.matching_counter(SECRET, code, T0) == expected


@pytest.mark.parametrize("code", ["", "12345", "abcdef", "1234567"])
def test_matching_counter_rejects_what_is_not_a_current_code(code: str) -> None:
    assert approvers.matching_counter(SECRET, code, T0) is None


def test_code_at_is_what_an_authenticator_app_shows() -> None:
    assert approvers.code_at(SECRET, T0) == pyotp.TOTP(SECRET).at(T0)


def test_provisioning_uri_is_an_otpauth_totp_uri_with_issuer_remediate_and_the_secret() -> None:
    secret = approvers.new_secret()
    uri = approvers.provisioning_uri("alice", secret)
    parts = urlsplit(uri)
    assert (parts.scheme, parts.netloc) == ("otpauth", "totp")
    assert unquote(parts.path) == "/remediate:alice@kamkmserve"
    query = parse_qs(parts.query)
    assert query["issuer"] == ["remediate"] and query["secret"] == [secret]
    assert query.get("period", ["30"]) == ["30"] and query.get("digits", ["6"]) == ["6"]
    parsed = pyotp.parse_uri(uri)
    assert isinstance(parsed, pyotp.TOTP) and parsed.at(T0) == approvers.code_at(secret, T0)


def test_new_secrets_are_random_base32_long_enough_for_pyotp() -> None:
    first, second = approvers.new_secret(), approvers.new_secret()
    assert first != second and len(first) >= 32
    assert approvers.code_at(first, T0).isdigit()


def test_a_factor_references_its_secret_and_says_why_it_cannot_be_read_without_a_value(
        monkeypatch: pytest.MonkeyPatch) -> None:
    factor = ApproverFactor(totp_env="KAMKM_TEST_TOTP_ALICE")
    monkeypatch.delenv("KAMKM_TEST_TOTP_ALICE", raising=False)
    assert approvers.totp_secret("alice", factor) == (
        None, "approvers.alice.totp: environment variable KAMKM_TEST_TOTP_ALICE is not set")
    monkeypatch.setenv("KAMKM_TEST_TOTP_ALICE", SECRET)
    assert approvers.totp_secret("alice", factor) == (SECRET, "")
    assert approvers.totp_secret("carol", ApproverFactor(slack_user="U1")) == (
        None, "'carol' has no TOTP factor enrolled")
    assert ApproverFactor(slack_user="U1").proven and not ApproverFactor().proven


def test_step_binding_names_incident_action_and_the_first_16_digest_characters() -> None:
    assert approvers.step_binding("inc-1", "act-2", "0123456789abcdef0123") == "inc-1/act-2/0123456789abcdef"


# -- remediate.toml -----------------------------------------------------------------------------------------------


def test_approver_tables_become_the_approver_list_and_their_factor_references(config: Write) -> None:
    config('[approvers.alice]\ntotp = { env = "REMEDIATE_TOTP_ALICE" }\nslack_user = " U024BE7LH "\n'
           '[approvers.bob]\ntotp = { prefect_secret = "totp-bob" }\n'
           '[approvers.carol]\nslack_user = "U0CAROL"\n'
           '[approvers.dave]\n')
    settings = Settings()
    assert settings.approvers == ["alice", "bob", "carol", "dave"]
    assert settings.approver_factors == {
        "alice": ApproverFactor(totp_env="REMEDIATE_TOTP_ALICE", slack_user="U024BE7LH"),
        "bob": ApproverFactor(totp_prefect_secret="totp-bob"),
        "carol": ApproverFactor(slack_user="U0CAROL"),
        "dave": ApproverFactor(),
    }


def test_a_names_only_approver_list_still_works_without_factors(config: Write) -> None:
    config('approvers = ["alice", "bob"]\n')
    settings = Settings()
    assert settings.approvers == ["alice", "bob"] and settings.approver_factors == {}


def test_min_approvers_table_sets_the_counts_per_severity_and_risk(config: Write) -> None:
    config('[min_approvers]\n"sev2:destructive" = 2\n"*:reversible" = 3\n')
    settings = Settings()
    assert settings.min_approvers == {"sev2:destructive": 2, "*:reversible": 3}
    assert approvers.needed(settings.min_approvers, "sev2", "destructive") == 2
    assert approvers.needed(settings.min_approvers, "sev1", "destructive") == 2  # the default still applies
    assert approvers.needed(settings.min_approvers, "sev4", "reversible") == 3


LITERAL = "JBSWY3DPEHPK3PXPLITERALSECRETXYZ"


@pytest.mark.parametrize("totp", [
    f'"{LITERAL}"',
    f'{{ value = "{LITERAL}" }}',
    f'{{ env = "REMEDIATE_TOTP_ALICE", secret = "{LITERAL}" }}',
    f'["{LITERAL}"]',
], ids=["string", "value-key", "extra-key", "list"])  # fmt: skip
def test_a_literal_totp_secret_is_a_config_error_that_does_not_echo_it(config: Write, totp: str) -> None:
    config(f"[approvers.alice]\ntotp = {totp}\n")
    with pytest.raises(ConfigError, match=r"approvers\.alice\.totp must be") as raised:
        Settings()
    assert LITERAL not in str(raised.value)


def test_an_approver_that_is_not_a_table_is_a_config_error_that_does_not_echo_the_value(config: Write) -> None:
    config(f'[approvers]\nalice = "{LITERAL}"\n')
    with pytest.raises(ConfigError, match=r"\[approvers\.alice\] must be a table") as raised:
        Settings()
    assert LITERAL not in str(raised.value)


def test_an_unknown_key_in_an_approver_table_is_a_config_error_naming_the_key(config: Write) -> None:
    config(f'[approvers.alice]\ntotp_secret = "{LITERAL}"\nslack_user = "U1"\n')
    with pytest.raises(ConfigError, match=r"\[approvers\.alice\]: unknown key\(s\) \['totp_secret'\]") as raised:
        Settings()
    assert LITERAL not in str(raised.value)


@pytest.mark.parametrize(("table", "message"), [
    ('totp = { env = "" }', r"approvers\.alice\.totp\.env must name an environment variable"),
    ('slack_user = ""', r"approvers\.alice\.slack_user must be a Slack user id"),
    ("slack_user = 42", r"approvers\.alice\.slack_user must be a Slack user id"),
])  # fmt: skip
def test_an_empty_or_mistyped_factor_reference_is_a_config_error(config: Write, table: str, message: str) -> None:
    config(f"[approvers.alice]\n{table}\n")
    with pytest.raises(ConfigError, match=message):
        Settings()
