"""deploy/compose.yaml and deploy/alertmanager.yml refer only to things that exist: images or a build,
`remediate` subcommands, REMEDIATE_* settings, and the replicas' real receiver path.

Compose itself (`docker compose config -q`) is not run: the test machines have no Compose v2, and Debian's Compose
v1 does not read the Compose specification (top-level `name`, secrets from the environment).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import typer.main
import yaml
from pydantic import AliasChoices

from remediation.cli import app
from remediation.settings import Settings
from remediation.settings_vendors import flat_fields, group_model

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy"
COMPOSE = DEPLOY / "compose.yaml"
RECEIVER_PATH = "/alerts/alertmanager"
REPLICAS = ("remediate-1", "remediate-2")


def compose() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load(COMPOSE.read_text())
    return data


def services() -> dict[str, dict[str, Any]]:
    found: dict[str, dict[str, Any]] = compose()["services"]
    return found


def setting_env_names() -> set[str]:
    """Every environment variable name Settings reads (prefix + flat name, or the field's own aliases; a vendor
    group's field by its flat name, REMEDIATE_AWS_REGION, and its env_aliases)."""
    prefix = Settings.model_config.get("env_prefix", "")
    names: set[str] = set()
    for flat, field in flat_fields(Settings).items():
        alias = field.info.validation_alias
        if isinstance(alias, AliasChoices):
            names |= {choice.upper() for choice in alias.choices if isinstance(choice, str)}
        elif isinstance(alias, str):
            names.add(alias.upper())
        else:
            names.add(f"{prefix}{flat}".upper())
        if field.group is not None:
            group = group_model(Settings.model_fields[field.group])
            names |= set(getattr(group, "env_aliases", {}).get(field.name, ()))
    return names


def cli_commands() -> set[str]:
    group = typer.main.get_command(app)
    commands: dict[str, Any] = getattr(group, "commands", {})
    return set(commands)


def environment(service: dict[str, Any]) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):  # the "KEY=value" list form
        env = dict(item.split("=", 1) for item in env)
    return {str(k): str(v) for k, v in env.items()}


def test_every_service_has_an_image_or_a_build_that_exists() -> None:
    for name, service in services().items():
        assert service.get("image") or service.get("build"), f"{name}: neither image nor build"
        if build := service.get("build"):
            context = (DEPLOY / build["context"]).resolve()
            assert context.is_dir(), f"{name}: build context {context}"
            assert (context / build["dockerfile"]).is_file(), f"{name}: no {build['dockerfile']}"
        for mount in service.get("volumes") or []:
            source = str(mount).split(":", 1)[0]
            if source.startswith("."):
                assert (DEPLOY / source).is_file(), f"{name}: mounts {source}, which is not in deploy/"


def test_the_store_and_prefect_server_run_on_the_compose_postgres_with_two_databases() -> None:
    init = (DEPLOY / "postgres-init.sql").read_text()
    databases = set(re.findall(r"CREATE DATABASE (\w+)", init))
    prefect_env = environment(services()["prefect-server"])
    prefect_url = prefect_env.get("PREFECT_SERVER_DATABASE_CONNECTION_URL") or prefect_env[
        "PREFECT_API_DATABASE_CONNECTION_URL"
    ]
    store_urls = {environment(services()[r])["REMEDIATE_DATABASE_URL"] for r in REPLICAS}
    assert len(store_urls) == 1, "the replicas must share one store"
    [store_url] = store_urls
    assert prefect_url.startswith("postgresql+asyncpg://") and store_url.startswith("postgresql+psycopg://")
    assert "@postgres:5432/" in prefect_url and "@postgres:5432/" in store_url
    prefect_db, store_db = prefect_url.rsplit("/", 1)[1], store_url.rsplit("/", 1)[1]
    assert prefect_db != store_db and {prefect_db, store_db} <= databases
    assert services()["prefect-server"]["image"] == "prefecthq/prefect:3.9.1-python3.11"


def test_every_remediate_command_is_a_real_cli_subcommand() -> None:
    known = cli_commands()
    assert "serve" in known  # the introspection itself works
    checked = 0
    for name, service in services().items():
        command = service.get("command")
        if service.get("build"):  # our image: ENTRYPOINT is `remediate`, so the command starts at the subcommand
            assert command, f"{name}: our image needs a command"
            assert command[0] in known, f"{name}: `remediate {command[0]}` does not exist"
            checked += 1
        elif command and command[0] == "remediate":
            assert command[1] in known, f"{name}: `remediate {command[1]}` does not exist"
            checked += 1
    assert checked >= len(REPLICAS)


def test_every_remediate_env_var_is_a_real_setting() -> None:
    real = setting_env_names()
    assert "REMEDIATE_DATABASE_URL" in real  # the introspection itself works
    used = {key for service in services().values() for key in environment(service) if key.startswith("REMEDIATE_")}
    assert used, "the replicas are configured through REMEDIATE_* settings"
    assert sorted(used - real) == []
    example = {line.split("=", 1)[0] for line in (DEPLOY / "env.example").read_text().splitlines()
               if line and not line.startswith("#")}  # fmt: skip
    assert sorted(k for k in example - real if k.startswith("REMEDIATE_")) == []


def test_both_replicas_share_the_prefect_api_and_serve_on_the_port_alertmanager_calls() -> None:
    api_urls = {environment(services()[r])["PREFECT_API_URL"] for r in REPLICAS}
    assert api_urls == {"http://prefect-server:4200/api"}
    for replica in REPLICAS:
        command = services()[replica]["command"]
        assert command[:1] == ["serve"] and command[command.index("--port") + 1] == "8080"
        assert command[command.index("--host") + 1] == "0.0.0.0"


def test_alertmanager_sends_to_both_replicas_on_the_receiver_path_with_the_token() -> None:
    alertmanager = services()["alertmanager"]
    mounted = {str(v).split(":")[1]: str(v).split(":")[0] for v in alertmanager["volumes"] if str(v).startswith(".")}
    config_path = next(a.split("=", 1)[1] for a in alertmanager["command"] if a.startswith("--config.file="))
    source = DEPLOY / mounted[config_path]
    config = yaml.safe_load(source.read_text())

    receivers = {r["name"]: r for r in config["receivers"]}
    assert config["route"]["receiver"] in receivers
    hooks = receivers[config["route"]["receiver"]]["webhook_configs"]
    urls = sorted(h["url"] for h in hooks)
    assert urls == [f"http://{r}:8080{RECEIVER_PATH}" for r in REPLICAS]
    assert RECEIVER_PATH in {route.path for route in _intake_routes()}

    secret_files = {f"/run/secrets/{s}" for s in alertmanager.get("secrets") or []}
    for hook in hooks:
        assert hook["send_resolved"] is True
        auth = hook["http_config"]["authorization"]
        assert auth.get("type", "Bearer") == "Bearer" and auth["credentials_file"] in secret_files
    # The secret Alertmanager reads is the very token the replicas check.
    for secret in alertmanager["secrets"]:
        assert compose()["secrets"][secret] == {"environment": "REMEDIATE_INTAKE_TOKEN"}
    assert all("REMEDIATE_INTAKE_TOKEN" in environment(services()[r]) for r in REPLICAS)


def _intake_routes() -> list[Any]:
    from remediation.intake import create_app
    from tests.intake.intakekit import FakeStarter, settings

    class _NoStore:
        def __getattr__(self, name: str) -> Any:
            raise AssertionError(f"the route table needs no store ({name})")

    application = create_app(settings(), _NoStore(), FakeStarter())  # type: ignore[arg-type]
    return list(application.routes)
