"""The start-up banner of `remediate serve`: where the receiver, the UI, the API and the store are."""

from __future__ import annotations

from remediation.orchestration.banner import Deployment, Facts, deployments_of, mask_password, render


def _facts(**overrides: object) -> Facts:
    base: dict[str, object] = {
        "receiver_url": "http://127.0.0.1:8080", "api_url": "http://127.0.0.1:4200/api",
        "ui_url": "http://127.0.0.1:4200", "store_url": "postgresql://remediate:s3cr3t@db.internal:5432/remediate",
        "platform": "aws",
        "approvers": (("alice", "ok, TOTP (env REMEDIATE_TOTP_ALICE)"),
                      ("bob", "refused, no second factor: every answer is refused; enrol with `remediate approvers "
                              "enroll bob`")),
        "deployments": (Deployment("elevated-error-rate"), Deployment("rolling-restart", ("cron 0 3 * * 1 (UTC)",))),
        "state_file": "/srv/remediate/.remediate/serve.json",
    }
    return Facts(**{**base, **overrides})  # type: ignore[arg-type]


def test_banner_shows_every_address_whole_on_its_own_line() -> None:
    lines = render(_facts()).splitlines()
    for url in ("http://127.0.0.1:8080", "http://127.0.0.1:8080/alerts/alertmanager",
                "http://127.0.0.1:8080/alerts/sentry", "http://127.0.0.1:8080/alerts/generic",
                "http://127.0.0.1:4200", "http://127.0.0.1:4200/api", "/srv/remediate/.remediate/serve.json"):
        assert f"  {url}" in lines, url


def test_banner_masks_the_store_password() -> None:
    text = render(_facts())
    assert "s3cr3t" not in text
    assert "  postgresql://remediate:***@db.internal:5432/remediate" in text.splitlines()


def test_banner_lines_fit_80_columns_except_a_long_url() -> None:
    long_url = "http://" + "x" * 90 + ":8080"
    lines = render(_facts(receiver_url=long_url, platform="aws " * 40)).splitlines()
    too_long = [line for line in lines if len(line) > 80]
    assert too_long and all(line.strip().startswith(long_url) for line in too_long), too_long


def test_banner_names_approvers_with_their_second_factor_and_the_schedules() -> None:
    text = render(_facts())
    assert "alice: ok, TOTP" in text
    assert "bob: refused, no second factor" in text
    assert "rolling-restart: cron 0 3 * * 1 (UTC)" in text
    assert "Deployments served (2):" in text


def test_banner_says_when_no_approver_platform_or_schedule_is_configured() -> None:
    text = render(_facts(approvers=(), platform=None, deployments=(Deployment("auth-access"),), ui_url=None))
    assert "Approvers: none configured" in text
    assert "Platform: none" in text
    assert "Schedules: none" in text
    assert "Prefect UI" not in text


def test_mask_password_leaves_a_url_without_password_alone() -> None:
    assert mask_password("sqlite:////tmp/x.db") == "sqlite:////tmp/x.db"
    assert mask_password("postgresql://user@h/db") == "postgresql://user@h/db"
    assert mask_password("postgresql+psycopg://u:p%40ss@h/db") == "postgresql+psycopg://u:***@h/db"


def test_deployments_of_describes_cron_and_interval_schedules() -> None:
    found = deployments_of([{"name": "a", "schedules": [{"cron": "0 3 * * 1", "timezone": "UTC"},
                                                       {"interval": 3600, "active": False}]}, {"name": "b"}])
    assert found == (Deployment("a", ("cron 0 3 * * 1 (UTC)", "every 3600s (inactive)")), Deployment("b"))


def test_banner_puts_configuration_warnings_first_within_80_columns() -> None:
    warning = "REMEDIATE_NEVER_BLOCK_CIRDS is not a setting (did you mean REMEDIATE_NEVER_BLOCK_CIDRS?): ignored"
    lines = render(_facts(warnings=(warning,))).splitlines()
    assert lines[3] == "Configuration warnings:" and lines.index("Configuration warnings:") < lines.index(
        "Alert receiver (POST alerts here):")
    assert all(len(line) <= 80 for line in lines)
    assert " ".join(line.strip() for line in lines[4:6]) == warning


def test_banner_has_no_warnings_heading_without_warnings() -> None:
    assert "Configuration warnings:" not in render(_facts())
