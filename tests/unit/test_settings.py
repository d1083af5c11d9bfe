"""Settings come from REMEDIATE_* variables when built, with comma lists and safe defaults; the vendor groups keep
their flat names outside the code."""

from __future__ import annotations

import pytest
from pydantic import SecretStr, ValidationError

from remediation.choices import REQUIRES, missing_settings
from remediation.config_file import secret_fields
from remediation.models import Mode
from remediation.settings import Settings
from remediation.settings_vendors import AwsSettings, flat_fields, flat_location, group_model


def test_defaults_are_safe(monkeypatch: pytest.MonkeyPatch) -> None:
    for key in ("REMEDIATE_MODE", "REMEDIATE_APPROVERS", "REMEDIATE_PREAPPROVED"):
        monkeypatch.delenv(key, raising=False)
    settings = Settings()
    assert settings.mode is Mode.APPROVE
    assert settings.approvers == [] and settings.preapproved == []
    assert settings.metrics_budget_per_min <= 100
    assert settings.platform is None, "no lever provider unless one is chosen: nothing mutates by default"


def test_the_simulator_platform_needs_its_own_url_never_the_apps(monkeypatch: pytest.MonkeyPatch) -> None:
    """REMEDIATE_PLATFORM=sim without REMEDIATE_SIM_URL is a configuration error: /_sim requests never go to the
    app's URL by default."""
    monkeypatch.setenv("REMEDIATE_APP_URL", "https://kamkmserve.example.com")
    monkeypatch.setenv("REMEDIATE_PLATFORM", "sim")
    monkeypatch.delenv("REMEDIATE_SIM_URL", raising=False)
    with pytest.raises(ValueError, match="REMEDIATE_SIM_URL"):
        Settings()
    monkeypatch.setenv("REMEDIATE_SIM_URL", "http://127.0.0.1:3999")
    assert Settings().sim_url == "http://127.0.0.1:3999"


def test_environment_is_read_at_construction(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REMEDIATE_APPROVERS", " alice, bob ,,")
    monkeypatch.setenv("REMEDIATE_APP_URL", "http://app.example:3000/")
    monkeypatch.setenv("REMEDIATE_MODE", "auto")
    monkeypatch.setenv("REMEDIATE_DATABASE_URL", "postgresql+psycopg://u@h/db")
    settings = Settings()
    assert settings.approvers == ["alice", "bob"]
    assert settings.mode is Mode.AUTO
    assert settings.app_url == "http://app.example:3000/"
    assert settings.resolved_database_url == "postgresql+psycopg://u@h/db"


def test_a_budget_above_the_apps_own_limit_is_rejected(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REMEDIATE_METRICS_BUDGET_PER_MIN", "150")
    with pytest.raises(ValueError, match="100"):
        Settings()


# The vendor groups (remediation.settings_vendors): read as settings.aws.region, named outside the code as they
# always were (REMEDIATE_AWS_REGION, [aws] region, Settings(aws_region=...)).

@pytest.mark.parametrize(("env", "raw", "path", "expected"), [
    ("REMEDIATE_AWS_REGION", "eu-west-1", "aws.region", "eu-west-1"),
    ("REMEDIATE_AWS_MAX_ATTEMPTS", "7", "aws.max_attempts", 7),
    ("REMEDIATE_AWS_JOB_SERVICES", " reports, mail ,,", "aws.job_services", ["reports", "mail"]),
    ("REMEDIATE_VERCEL_PROJECT_ID", "prj_9", "vercel.project_id", "prj_9"),
    ("REMEDIATE_VERCEL_DRAIN_SECRET", "drain-secret-1", "vercel.drain_secret", "drain-secret-1"),
    ("REMEDIATE_SENTRY_MAX_AGE_S", "60", "sentry.max_age_s", 60),
    ("REMEDIATE_SENTRY_DSN", "http://k@127.0.0.1:9/1", "sentry.dsn", "http://k@127.0.0.1:9/1"),
    ("SENTRY_DSN", "http://k@127.0.0.1:9/2", "sentry.dsn", "http://k@127.0.0.1:9/2"),
    ("REMEDIATE_CLERK_PUBLISHABLE_KEY", "pk_test_1", "clerk.publishable_key", "pk_test_1"),
    ("REMEDIATE_CLAMD_HOST", "clamd.internal", "clamd.host", "clamd.internal"),
    ("REMEDIATE_CLAMD_PORT", "3311", "clamd.port", 3311),
    ("REMEDIATE_SLACK_SIGNING_SECRET", "slack-signing-1", "slack.signing_secret", "slack-signing-1"),
    ("REMEDIATE_STATUSPAGE_COMPONENT_IDS", "cmp_a,cmp_b", "statuspage.component_ids", ["cmp_a", "cmp_b"]),
    ("REMEDIATE_PAGERDUTY_EVENTS_URL", "http://pd.example/v2", "pagerduty.events_url", "http://pd.example/v2"),
    ("REMEDIATE_PAGERDUTY_DUTY_MANAGER_ROUTING_KEY", "k" * 32, "pagerduty.duty_manager_routing_key", "k" * 32),
])
def test_every_vendor_keeps_its_environment_names(clean_env: pytest.MonkeyPatch, env: str, raw: str, path: str,
                                                  expected: object) -> None:
    clean_env.setenv(env, raw)
    group, name = path.split(".")
    value = getattr(getattr(Settings(), group), name)
    assert (value.get_secret_value() if isinstance(value, SecretStr) else value) == expected


def test_the_remediate_sentry_dsn_wins_over_the_conventional_one(clean_env: pytest.MonkeyPatch) -> None:
    clean_env.setenv("SENTRY_DSN", "http://conventional@127.0.0.1:9/1")
    clean_env.setenv("REMEDIATE_SENTRY_DSN", "http://ours@127.0.0.1:9/2")
    dsn = Settings().sentry.dsn
    assert dsn is not None and dsn.get_secret_value() == "http://ours@127.0.0.1:9/2"


def test_flat_arguments_fold_into_their_group_and_win_field_by_field(clean_env: pytest.MonkeyPatch) -> None:
    clean_env.setenv("REMEDIATE_AWS_REGION", "from-env")
    clean_env.setenv("REMEDIATE_AWS_ECS_CLUSTER", "env-cluster")
    clean_env.setenv("REMEDIATE_APP_URL", "http://app.example")
    settings = Settings(aws_region="from-argument", clamd_port=1, clamd_host="clamd", vercel_token="t" * 8)
    assert settings.aws.region == "from-argument", "an argument wins over the environment"
    assert settings.aws.ecs_cluster == "env-cluster", "the environment still sets the group's other fields"
    assert (settings.clamd.host, settings.clamd.port) == ("clamd", 1)
    assert settings.vercel.token is not None and settings.vercel.token.get_secret_value() == "t" * 8
    assert settings.app_url == "http://app.example", "a flat, non-vendor variable is read as ever"
    assert Settings(aws=AwsSettings(region="nested")).aws.region == "nested"
    assert Settings(aws={"region": "dict"}, aws_max_attempts=2).aws.model_dump(include={"region", "max_attempts"}) \
        == {"region": "dict", "max_attempts": 2}


def test_a_bad_value_in_a_vendor_group_names_the_field(clean_env: pytest.MonkeyPatch) -> None:
    clean_env.setenv("REMEDIATE_AWS_MAX_ATTEMPTS", "0")
    with pytest.raises(ValidationError) as raised:
        Settings()
    (error,) = raised.value.errors()
    assert error["loc"] == ("aws", "max_attempts") and "greater than or equal to 1" in error["msg"]
    assert flat_location(error["loc"], Settings) == "aws_max_attempts", "the CLI says REMEDIATE_AWS_MAX_ATTEMPTS' name"
    with pytest.raises(ValidationError, match=r"clamd\.port"):
        Settings(clamd_port=70000)


def test_an_unknown_vendor_variable_is_ignored_as_before(clean_env: pytest.MonkeyPatch) -> None:
    clean_env.setenv("REMEDIATE_AWS_REGIN", "typo")
    clean_env.setenv("REMEDIATE_AWS", "not-json")
    assert Settings().aws == AwsSettings()


def test_every_setting_has_one_flat_name_and_every_secret_is_found_in_the_groups() -> None:
    fields = flat_fields(Settings)
    nested = {f"{group}_{name}" for group, info in Settings.model_fields.items() if (model := group_model(info))
              for name in model.model_fields}
    groups = {"aws", "vercel", "sentry", "clerk", "clamd", "slack", "statuspage", "pagerduty"}
    assert groups <= set(Settings.model_fields)
    assert nested <= set(fields) and "aws_region" in nested and "app_url" in fields and "aws" not in fields
    secrets = secret_fields(Settings)
    assert {"vercel_token", "vercel_drain_secret", "sentry_dsn", "sentry_client_secret", "sentry_api_token",
            "clerk_secret_key", "slack_webhook_url", "slack_signing_secret", "statuspage_api_key",
            "pagerduty_routing_key", "pagerduty_secondary_routing_key", "pagerduty_duty_manager_routing_key",
            "intake_token", "intake_basic_password"} == secrets


def test_remediate_check_scrubs_the_secrets_inside_the_vendor_groups(clean_env: pytest.MonkeyPatch) -> None:
    from remediation.check import _secrets

    values = {name: f"seeded-{name}-value" for name in secret_fields(Settings)}
    assert sorted(_secrets(Settings(**values))) == sorted(values.values())


def test_what_an_implementation_requires_names_real_settings() -> None:
    settings = Settings()
    for name in {n for names in REQUIRES.values() for n in names}:
        assert name in flat_fields(Settings), name  # a wrong name would report the setting missing forever
    assert missing_settings("antivirus", "clamd", settings) == ["REMEDIATE_CLAMD_HOST"]
    assert missing_settings("antivirus", "clamd", Settings(clamd_host="clamd")) == []


def test_serve_names_the_vendor_settings_that_differ_from_the_environment_by_flat_name(
    clean_env: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    from deployments.serve import _warn_if_settings_differ_from_env

    clean_env.setenv("REMEDIATE_AWS_REGION", "eu-west-1")
    _warn_if_settings_differ_from_env(Settings(aws_region="us-east-1", clamd_port=3311))
    assert "differs from the given settings in: aws_region, clamd_port" in caplog.text
