"""The one configuration file, ``remediate.toml`` (documented in docs/configuration.md).

Where: the path in ``REMEDIATE_CONFIG`` (it must exist), else ``./remediate.toml`` when there is one. It is read
when ``Settings()`` is built, never at import, and cached by path, size and modification time.

Shape::

    platform = "vercel"               # top level: any setting by its name
    approvers = ["alice", "bob"]      # names only: believed on the simulator platform only; elsewhere
                                      # enrol them instead: [approvers.alice] totp = { env = "VAR" }
    [vercel]                          # [group] key -> the setting group_key (vercel_project_id, which is
                                      # settings.vercel.project_id: remediation.settings_vendors)
    project_id = "prj_123"
    [capabilities]                    # capability -> implementation (remediation.choices.CHOICES)
    errors = "sentry"
    notify = ["slack", "pagerduty"]   # the notification channels
    [secrets]                         # a secret setting -> where its value lives
    vercel_token = { env = "VERCEL_TOKEN" }
    slack_webhook_url = { prefect_secret = "slack-incidents-webhook" }

Rules, each an error naming the key: an unknown key (a typo must not silently fall back to a default); a secret
setting (a ``SecretStr`` field) anywhere but ``[secrets]``; a literal value in ``[secrets]``. Secrets are read
from the environment or from a Prefect Secret block only; a reference that cannot be resolved leaves the setting
unset (the capability then reports what is missing) and is listed by ``remediate check``, by name only.

Precedence: ``Settings(...)`` arguments > ``REMEDIATE_*`` environment > this file > defaults.
"""

from __future__ import annotations

import logging
import os
import threading
import tomllib
import typing
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict
from pydantic.fields import FieldInfo
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource

from remediation.choices import CHANNELS, CapabilityError, validate
from remediation.settings_vendors import flat_fields, is_secret, nest

CONFIG_ENV = "REMEDIATE_CONFIG"
DEFAULT_NAME = "remediate.toml"
log = logging.getLogger("remediation.config")


class ConfigError(ValueError):
    """The configuration file is unreadable or says something that cannot be right."""


class SecretRef(BaseModel):
    """Where a secret setting's value lives. Exactly one of ``env`` / ``prefect_secret``."""

    model_config = ConfigDict(frozen=True)

    setting: str
    env: str | None = None
    prefect_secret: str | None = None

    def describe(self) -> str:
        return f"env {self.env}" if self.env else f"Prefect Secret block '{self.prefect_secret}'"


class ConfigFile(BaseModel):
    model_config = ConfigDict(frozen=True)

    path: Path
    values: dict[str, Any]  # non-secret settings, by flat name (vercel_project_id; remediation.settings_vendors)
    secrets: tuple[SecretRef, ...] = ()


class Resolved(BaseModel):
    model_config = ConfigDict(frozen=True)

    ref: SecretRef
    ok: bool
    problem: str = ""


def config_path(environ: typing.Mapping[str, str] | None = None) -> Path | None:
    env = os.environ if environ is None else environ
    explicit = env.get(CONFIG_ENV, "").strip()
    if explicit:
        path = Path(explicit).expanduser()
        if not path.is_file():
            raise ConfigError(f"{CONFIG_ENV}={explicit}: no such file")
        return path
    default = Path(DEFAULT_NAME)
    return default if default.is_file() else None


def secret_fields(settings_cls: type[BaseSettings]) -> set[str]:
    """The secret settings (``SecretStr`` fields, the vendor groups' included) by their flat names."""
    return {name for name, field in flat_fields(settings_cls).items() if is_secret(field.info)}


_cache: dict[tuple[str, int, int], ConfigFile] = {}
_cache_lock = threading.Lock()


def load(path: Path, settings_cls: type[BaseSettings]) -> ConfigFile:
    stat = path.stat()
    key = (str(path.resolve()), stat.st_size, stat.st_mtime_ns)
    with _cache_lock:
        if key in _cache:
            return _cache[key]
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"{path}: {exc}") from exc
    parsed = parse(raw, settings_cls, path)
    with _cache_lock:
        _cache[key] = parsed
    return parsed


def parse(raw: dict[str, Any], settings_cls: type[BaseSettings], path: Path = Path(DEFAULT_NAME)) -> ConfigFile:
    fields = set(flat_fields(settings_cls))  # flat names: [vercel] project_id is vercel_project_id
    secrets = secret_fields(settings_cls)
    values: dict[str, Any] = {}
    refs: list[SecretRef] = []

    def put(name: str, value: Any, where: str) -> None:
        if name not in fields:
            raise ConfigError(f"{path}: unknown setting '{where}'")
        if name in secrets:
            raise ConfigError(f"{path}: '{where}' is a secret: reference it under [secrets] as "
                              f"{{ env = \"VAR\" }} or {{ prefect_secret = \"block\" }}, never write it in the file")
        values[name] = value

    for key, value in raw.items():
        if key == "secrets":
            refs.extend(_secret_refs(value, secrets, path))
        elif key == "approvers" and isinstance(value, dict):
            values["approvers"], values["approver_factors"] = _approver_directory(value, path)
        elif key == "capabilities":
            choices = _table(value, key, path)
            if "notify" in choices:
                channels = choices.pop("notify")
                values["notify_channels"] = [channels] if isinstance(channels, str) else list(channels)
                _check_channels(values["notify_channels"], path)
            try:
                validate(choices)
            except CapabilityError as exc:
                raise ConfigError(f"{path}: {exc}") from exc
            values["capabilities"] = choices
        elif isinstance(value, dict) and key not in fields:
            for sub, item in value.items():
                if isinstance(item, dict):
                    raise ConfigError(f"{path}: [{key}.{sub}]: tables nest one level only")
                put(f"{key}_{sub}", item, f"{key}.{sub}")
        else:
            put(key, value, key)
    return ConfigFile(path=path, values=values, secrets=tuple(refs))


def _approver_directory(value: dict[str, Any], path: Path) -> tuple[list[str], dict[str, dict[str, str]]]:
    """``[approvers.NAME]`` tables: each name's factor references (``totp``, ``slack_user``), never a secret."""
    names: list[str] = []
    factors: dict[str, dict[str, str]] = {}
    for name, table in value.items():
        where = f"approvers.{name}"
        if not isinstance(table, dict):
            raise ConfigError(f"{path}: [{where}] must be a table (totp = {{ env = \"VAR\" }}, slack_user = \"U…\"); "
                              "for names without a factor write approvers = [\"alice\", \"bob\"]")
        unknown = sorted(set(table) - {"totp", "slack_user"})
        if unknown:
            raise ConfigError(f"{path}: [{where}]: unknown key(s) {unknown}; known: totp, slack_user")
        factor: dict[str, str] = {}
        if "totp" in table:
            kind, target = _reference(table["totp"], f"{where}.totp", path)
            factor["totp_env" if kind == "env" else "totp_prefect_secret"] = target
        if "slack_user" in table:
            if not isinstance(table["slack_user"], str) or not table["slack_user"].strip():
                raise ConfigError(f"{path}: {where}.slack_user must be a Slack user id such as \"U024BE7LH\"")
            factor["slack_user"] = table["slack_user"].strip()
        names.append(name)
        factors[name] = factor
    return names, factors


def _table(value: Any, name: str, path: Path) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise ConfigError(f"{path}: '{name}' must be a table ([{name}])")
    return dict(value)


def _check_channels(channels: list[Any], path: Path) -> None:
    unknown = [c for c in channels if c not in CHANNELS]
    if unknown:
        raise ConfigError(f"{path}: unknown notification channel(s) {unknown} in capabilities.notify; known: "
                          f"{', '.join(CHANNELS)}")


def _secret_refs(value: Any, secrets: set[str], path: Path) -> list[SecretRef]:
    refs = []
    for name, ref in _table(value, "secrets", path).items():
        if name not in secrets:
            raise ConfigError(f"{path}: secrets.{name}: not a secret setting (secret settings: "
                              f"{', '.join(sorted(secrets))})")
        kind, target = _reference(ref, f"secrets.{name}", path)
        refs.append(SecretRef(setting=name, **{kind: target}))
    return refs


def _reference(ref: Any, where: str, path: Path) -> tuple[str, str]:
    """``{ env = "VAR" }`` or ``{ prefect_secret = "block" }`` as (kind, target); anything else is an error."""
    if not isinstance(ref, dict) or len(ref) != 1 or not ({"env", "prefect_secret"} >= set(ref)):
        # Never echo the value: it may be the secret itself, written here by mistake.
        raise ConfigError(f"{path}: {where} must be {{ env = \"VAR\" }} or {{ prefect_secret = \"block-name\" }}; "
                          "a literal value is not accepted")
    (kind, target), = ref.items()
    if not isinstance(target, str) or not target:
        raise ConfigError(f"{path}: {where}.{kind} must name an environment variable or a block")
    return kind, target


_prefect_values: dict[str, str] = {}
_warned: set[str] = set()
_prefect_lock = threading.Lock()


def resolve(ref: SecretRef) -> tuple[str | None, str]:
    """(value, "") or (None, why not). The why names the reference, never a value."""
    if ref.env:
        value = os.environ.get(ref.env)
        return (value, "") if value else (None, f"{ref.setting}: environment variable {ref.env} is not set")
    name = ref.prefect_secret or ""
    with _prefect_lock:
        if name in _prefect_values:  # cached for the process: a rotation takes a restart
            return _prefect_values[name], ""
    try:
        from prefect.blocks.system import Secret

        block = typing.cast(Secret, Secret.load(name, _sync=True))  # type: ignore[call-arg]  # forced sync
        value = block.get()
    except Exception as exc:
        return None, f"{ref.setting}: Prefect Secret block '{name}' could not be read ({type(exc).__name__})"
    if not isinstance(value, str) or not value:
        return None, f"{ref.setting}: Prefect Secret block '{name}' does not hold a string"
    with _prefect_lock:
        _prefect_values[name] = value
    return value, ""


def check_secrets(config: ConfigFile) -> list[Resolved]:
    results = []
    for ref in config.secrets:
        value, problem = resolve(ref)
        results.append(Resolved(ref=ref, ok=value is not None, problem=problem))
    return results


class ConfigFileSource(PydanticBaseSettingsSource):
    """pydantic-settings source for the file: below the environment, above the defaults."""

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        return None, field_name, False  # unused: __call__ returns everything at once

    def __call__(self) -> dict[str, Any]:
        path = config_path()
        if path is None:
            return {}
        config = load(path, self.settings_cls)
        values = dict(config.values)  # by flat name, nested into the vendor groups below
        for ref in config.secrets:
            if f"REMEDIATE_{ref.setting.upper()}" in os.environ:
                continue  # the environment wins anyway: do not even fetch it
            value, problem = resolve(ref)
            if value is not None:
                values[ref.setting] = value
            elif problem not in _warned:  # Settings() is built often; say it once
                _warned.add(problem)
                log.warning("configuration: %s (left unset)", problem)
        return nest(values, self.settings_cls)
