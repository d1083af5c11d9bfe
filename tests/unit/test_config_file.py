"""remediate.toml: values, precedence (arguments > env > file > defaults), secrets only by reference, and the
per-capability choices it makes."""

from __future__ import annotations

import inspect
from pathlib import Path

import pytest
from pydantic import ValidationError

from remediation import catalog, composition
from remediation.choices import CHOICES, CapabilityError, validate
from remediation.config_file import ConfigError, check_secrets, load, secret_fields
from remediation.settings import Settings
from tests.unit.conftest import Write

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "docs" / "remediate.example.toml"


def test_file_values_apply_env_overrides_them_and_arguments_override_both(
    config: Write, monkeypatch: pytest.MonkeyPatch
) -> None:
    config('mode = "auto"\napprovers = ["alice"]\nmax_replicas = 7\n[vercel]\nproject_id = "prj_1"\n'
           '[ack]\nsev1_s = 60\n')
    monkeypatch.setenv("REMEDIATE_MAX_REPLICAS", "9")
    settings = Settings()
    assert settings.mode.value == "auto" and settings.approvers == ["alice"]
    assert settings.vercel.project_id == "prj_1" and settings.ack_sev1_s == 60
    assert settings.max_replicas == 9, "the environment wins over the file"
    assert Settings(max_replicas=3).max_replicas == 3


def test_a_vendor_group_is_set_by_its_table_or_its_flat_names_field_by_field_under_the_environment(
    config: Write, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The file keeps its shape while the code reads settings.vercel.project_id: [vercel] project_id, or
    vercel_project_id at the top level; [secrets] by flat name. The environment wins field by field, not group by
    group."""
    config('vercel_team_id = "team_1"\n[vercel]\nproject_id = "prj_1"\n[aws]\nregion = "eu-west-1"\n'
           'max_attempts = 3\njob_services = ["reports", "mail"]\n[clamd]\nhost = "clamd.internal"\n'
           '[secrets]\nvercel_token = { env = "MY_VERCEL_TOKEN" }\npagerduty_routing_key = { env = "MY_PD" }\n')
    monkeypatch.setenv("MY_VERCEL_TOKEN", "fileRefToken1")
    monkeypatch.setenv("MY_PD", "p" * 32)
    monkeypatch.setenv("REMEDIATE_AWS_MAX_ATTEMPTS", "9")
    settings = Settings(clamd_port=3311)
    assert (settings.vercel.team_id, settings.vercel.project_id) == ("team_1", "prj_1")
    assert settings.vercel.token is not None and settings.vercel.token.get_secret_value() == "fileRefToken1"
    assert settings.pagerduty.routing_key is not None and settings.pagerduty.routing_key.get_secret_value() == "p" * 32
    assert (settings.aws.region, settings.aws.max_attempts) == ("eu-west-1", 9), "env wins over the file, per field"
    assert settings.aws.job_services == ["reports", "mail"]
    assert (settings.clamd.host, settings.clamd.port) == ("clamd.internal", 3311), "arguments over the file, per field"


def test_a_bad_value_in_a_vendor_table_names_the_field(config: Write) -> None:
    config("[aws]\nmax_attempts = 0\n")
    with pytest.raises(ValidationError, match=r"aws\.max_attempts"):
        Settings()


def test_without_a_file_nothing_changes(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("REMEDIATE_CONFIG", raising=False)
    monkeypatch.chdir(tmp_path)
    assert Settings().mode == Settings.model_fields["mode"].default


def test_a_named_file_that_does_not_exist_is_an_error(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("REMEDIATE_CONFIG", str(tmp_path / "nope.toml"))
    with pytest.raises(ConfigError, match="no such file"):
        Settings()


@pytest.mark.parametrize(("text", "message"), [
    ("max_replica = 3\n", "unknown setting 'max_replica'"),
    ("[vercel]\nprojectid = 'x'\n", "unknown setting 'vercel.projectid'"),
    ("[aws]\nbogus = 1\n", "unknown setting 'aws.bogus'"),
    ("aws_bogus = 1\n", "unknown setting 'aws_bogus'"),
    ("aws = 'eu-west-1'\n", "unknown setting 'aws'"),
    ("[vercel]\ntoken = 'x'\n", "'vercel.token' is a secret"),
    ("[vercel.deep]\nx = 1\n", "nest one level only"),
    ("[capabilities]\nerrors = 'datadog'\n", "no implementation 'datadog'"),
    ("[capabilities]\npager = 'sim'\n", "unknown capability 'pager'"),
    ("[capabilities]\nlogs = 'papertrail'\n", "no implementation 'papertrail'"),
    ("[capabilities]\nnotify = ['email']\n", "unknown notification channel"),
    ("[secrets]\nmax_replicas = { env = 'X' }\n", "not a secret setting"),
    ("max_replicas = \n", "Invalid value"),
])
def test_mistakes_are_errors_that_name_the_key(config: Write, text: str, message: str) -> None:
    config(text)
    with pytest.raises(ConfigError, match=message):
        Settings()


def test_a_secret_written_in_the_file_is_refused_without_repeating_it(config: Write) -> None:
    config('[slack]\nwebhook_url = "https://hooks.slack.com/services/T/B/literalSECRET123"\n')
    with pytest.raises(ConfigError) as outside:
        Settings()
    assert "[secrets]" in str(outside.value) and "literalSECRET123" not in str(outside.value)
    config('[secrets]\nvercel_token = "literalSECRET456"\n')
    with pytest.raises(ConfigError) as literal:
        Settings()
    assert "literal value is not accepted" in str(literal.value) and "literalSECRET456" not in str(literal.value)


def test_secrets_come_from_the_named_environment_variable(config: Write, monkeypatch: pytest.MonkeyPatch) -> None:
    path = config('[secrets]\nslack_webhook_url = { env = "SLACK_HOOK" }\nvercel_token = { env = "NOT_SET_HERE" }\n')
    monkeypatch.setenv("SLACK_HOOK", "http://hooks.example/services/T/B/envSECRET")
    settings = Settings()
    assert settings.slack.webhook_url is not None
    assert settings.slack.webhook_url.get_secret_value().endswith("envSECRET")
    assert "envSECRET" not in repr(settings) and "envSECRET" not in str(settings.model_dump())
    assert settings.vercel.token is None
    problems = [r.problem for r in check_secrets(load(path, Settings)) if not r.ok]
    assert problems == ["vercel_token: environment variable NOT_SET_HERE is not set"]


def test_the_remediate_variable_wins_over_a_secret_reference(config: Write, monkeypatch: pytest.MonkeyPatch) -> None:
    config('[secrets]\nvercel_token = { env = "FROM_FILE_REF" }\n')
    monkeypatch.setenv("FROM_FILE_REF", "refValue1")
    monkeypatch.setenv("REMEDIATE_VERCEL_TOKEN", "envValue2")
    token = Settings().vercel.token
    assert token is not None and token.get_secret_value() == "envValue2"


@pytest.mark.usefixtures("prefect_api")
def test_secrets_come_from_a_prefect_secret_block(config: Write) -> None:
    from prefect.blocks.system import Secret

    Secret(value="blockSECRETvalue").save("remediate-test-statuspage-key", overwrite=True)
    config('[secrets]\nstatuspage_api_key = { prefect_secret = "remediate-test-statuspage-key" }\n'
           'pagerduty_routing_key = { prefect_secret = "no-such-block" }\n')
    settings = Settings()
    assert settings.statuspage.api_key is not None
    assert settings.statuspage.api_key.get_secret_value() == "blockSECRETvalue"
    assert settings.pagerduty.routing_key is None


def test_capabilities_choose_implementations_and_notify_lists_channels(config: Write, tmp_path: Path) -> None:
    config(f'home = "{tmp_path}"\nplatform = "sim"\nsim_url = "http://127.0.0.1:9"\n'
           '[capabilities]\nerrors = "sentry"\ncapacity = "none"\nidentity = "clerk"\n'
           'notify = ["pagerduty"]\n[secrets]\npagerduty_routing_key = { env = "PD_KEY" }\n')
    settings = Settings()
    assert settings.capabilities == {"errors": "sentry", "capacity": "none", "identity": "clerk"}
    assert settings.notify_channels == ["pagerduty"]
    providers = composition.connect(settings, migrate=False)
    assert type(providers.errors).__name__ == "NoErrors", "sentry chosen, not configured: says so on use"
    assert "REMEDIATE_SENTRY_API_TOKEN" in providers.sources["errors"].missing
    assert providers.capacity is None and providers.identity is None
    assert providers.notifier is not None and [c.name for c in providers.notifier.channels] == ["pagerduty"]
    assert type(providers.deploys).__name__ == "SimDeploys", "unchosen capabilities keep the platform's"


def test_every_choice_in_the_menu_builds(tmp_path: Path) -> None:
    for capability, implementations in CHOICES.items():
        for implementation in implementations:
            settings = Settings(home=tmp_path, capabilities={capability: implementation}, aws_region="us-east-1",
                                app_database_url="postgresql+psycopg://x@127.0.0.1:1/x", clamd_host="127.0.0.1",
                                vercel_edge_config_id="ecfg_1", vercel_project_id="prj_1", vercel_token="t" * 8,
                                sim_url="http://127.0.0.1:9", log_files=[str(tmp_path / "app.log")],
                                vercel_drain_secret="d" * 16, aws_log_group="kamkmserve", aws_job_services=["w"],
                                aws_waf_ip_set_name="blocks", aws_target_group_arn="arn:aws:tg",
                                statuspage_api_key="k" * 8, statuspage_page_id="p", sentry_api_token="t" * 8,
                                sentry_org="kamkm", sentry_project="js", clerk_secret_key="sk_test_" + "x" * 8)
            providers = composition.connect(settings, migrate=False)  # builds only: nothing connects
            source = providers.sources[capability]
            assert source.implementation == implementation and not source.missing, (capability, source)
            if implementation == "none" and capability in ("logs", "errors"):  # read by every runbook: a stand-in
                assert type(getattr(providers, capability)).__name__ in ("NoLogs", "NoErrors")
            else:
                assert (getattr(providers, capability) is None) == (implementation == "none"), (capability,
                                                                                                 implementation)
    with pytest.raises(CapabilityError):
        validate({"deploys": "heroku"})


def test_the_documented_example_is_valid(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REMEDIATE_CONFIG", str(EXAMPLE))
    loaded = load(EXAMPLE, Settings)
    assert loaded.values["platform"] == "vercel" and loaded.values["vercel_project_id"] == "prj_kamkmserve"
    assert {ref.setting for ref in loaded.secrets} == secret_fields(Settings) - {"intake_basic_password",
                                                                               "sentry_dsn"}


def test_no_runbook_takes_a_secret_as_a_flow_parameter() -> None:
    """Secrets come from env or Secret blocks: a flow parameter would be stored in Prefect and shown in the UI."""
    secrets = secret_fields(Settings)
    for name in catalog.RUNBOOKS:
        parameters = set(inspect.signature(catalog.load(name).fn).parameters)
        assert not parameters & secrets, name
        assert not [p for p in parameters if any(word in p for word in ("token", "secret", "password", "webhook",
                                                                        "routing_key", "api_key"))], name
