"""The vendor groups of ``Settings``: one small model per vendor (``settings.aws.region``), and their flat names.

Each group is a field of ``Settings`` whose type is one of these models. Outside the code nothing is nested: a
group's field keeps the flat name it always had, ``<group>_<field>`` (``aws_region``), which is

- its environment variable after the prefix: ``REMEDIATE_AWS_REGION`` (plus a field's own ``env_aliases``, such as
  the conventional ``SENTRY_DSN``), read by ``VendorEnvSource``;
- its key in ``remediate.toml``: ``[aws] region = ...`` or ``aws_region = ...``, ``[secrets] vercel_token = ...``
  (remediation.config_file);
- an accepted keyword of ``Settings(aws_region=...)``, folded into the group by ``nest``.

``flat_fields`` lists every setting by its flat name, nested ones included: whatever walks the settings (the
configuration file's key checks, the secret settings, ``remediate check``'s scrubbing) walks that, never
``Settings.model_fields`` alone.
"""

from __future__ import annotations

import functools
import typing
from collections.abc import Mapping
from typing import Annotated, Any, ClassVar, Literal, NamedTuple

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator
from pydantic.fields import FieldInfo
from pydantic_settings import EnvSettingsSource, NoDecode, PydanticBaseSettingsSource


def comma_list(value: object) -> object:
    if isinstance(value, str):
        return [item.strip() for item in value.split(",") if item.strip()]
    return value


class VendorSettings(BaseModel):
    """A vendor's settings. Unknown keys are ignored, as they always were for ``Settings`` (the configuration file
    checks its own keys against ``flat_fields``)."""

    model_config = ConfigDict(extra="ignore")

    #: Field -> environment variables read after ``REMEDIATE_<GROUP>_<FIELD>``, in order (never prefixed).
    env_aliases: ClassVar[Mapping[str, tuple[str, ...]]] = {}


class AwsSettings(VendorSettings):
    """AWS (REMEDIATE_PLATFORM=aws; remediation.providers.aws). Credentials come only from boto3's standard chain
    (AWS_* environment, shared profile, instance or task role): never settings, never parameters, never logged."""

    region: str | None = Field(default=None, description="AWS region; None: boto3's own (AWS_DEFAULT_REGION)")
    endpoint_url: str | None = Field(default=None, description="One endpoint for every AWS client (moto in tests)")
    max_attempts: int = Field(default=5, ge=1, le=20, description="Attempts per AWS call (adaptive retry mode)")
    ecs_cluster: str = Field(default="kamkmserve", description="ECS cluster of the web and worker services")
    ecs_service: str = Field(default="kamkmserve", description="ECS web service: releases, and capacity when "
                             "aws_capacity is ecs")
    capacity: Literal["ecs", "asg", "none"] = Field(default="ecs", description="What scales the web service")
    asg_name: str | None = Field(default=None, description="Auto Scaling group when aws_capacity is asg")
    job_services: Annotated[list[str], NoDecode] = Field(
        default_factory=list, description="ECS worker services that are the job pools (comma-separated)")
    waf_ip_set_name: str | None = Field(default=None, description="WAFv2 IP set of the block list; None: no lever")
    waf_ip_set_id: str | None = Field(default=None, description="Its id (looked up by name when unset)")
    waf_scope: Literal["REGIONAL", "CLOUDFRONT"] = "REGIONAL"
    ssm_prefix: str = Field(default="/kamkmserve/remediation", description="SSM path of maintenance, flags, "
                            "upload allowlist and block TTLs")
    log_group: str | None = Field(default=None, description="CloudWatch log group of the app's stdout")
    log_stream_prefix: str | None = None
    target_group_arn: str | None = Field(default=None, description="ELBv2 target group of the web instances")
    drain_poll_s: float = Field(default=5.0, gt=0, description="Polling interval of drain/restore waits")

    @field_validator("job_services", mode="before")
    @classmethod
    def _split(cls, value: object) -> object:
        return comma_list(value)


class VercelSettings(VendorSettings):
    """Vercel (REMEDIATE_PLATFORM=vercel; remediation.providers.vercel*): deployments, Edge Config levers and the
    firewall's IP blocks, and the Log Drain the receiver accepts (remediation.intake.vercel_drain). The token is a
    secret: settings or env only, never a flow parameter, never logged."""

    drain_secret: SecretStr | None = Field(default=None, description="Vercel Log Drain secret: the key of "
                                           "x-vercel-signature; None: POST /logs/vercel refuses every delivery")
    token: SecretStr | None = Field(default=None, description="Vercel access token (Bearer)")
    team_id: str | None = Field(default=None, description="Team of the project (teamId); None: personal")
    project_id: str | None = Field(default=None, description="The kamkmserve project (prj_... or its name)")
    edge_config_id: str | None = Field(default=None, description="Edge Config (ecfg_...) holding maintenance "
                                       "prefixes, flags and the upload allowlist; None: no edge lever")
    api_url: str = Field(default="https://api.vercel.com", description="Vercel REST API (a fake in tests)")


class SentrySettings(VendorSettings):
    """Sentry, three ways: the integration's webhooks to the receiver (client_secret, max_age_s); our own error
    reporting (dsn, environment: on when a DSN is set); and the REST API for the app's issues, event counts,
    releases and deploys (docs/reference/kamkmserve.md §9: org kamkm, project javascript-nextjs). The DSN is not the
    API: it is where our own errors go."""

    env_aliases: ClassVar[Mapping[str, tuple[str, ...]]] = {"dsn": ("SENTRY_DSN",)}

    client_secret: SecretStr | None = Field(default=None, description="Sentry integration client secret")
    max_age_s: int = Field(default=300, ge=1)
    dsn: SecretStr | None = Field(
        default=None, description="sentry-sdk DSN for our own processes; unset or empty disables it")
    environment: str = "production"
    api_token: SecretStr | None = Field(default=None, description="Sentry auth token (event:read, "
                                        "project:read, project:releases, org:read)")
    org: str | None = Field(default=None, description="Sentry organization slug of the app (kamkm)")
    project: str | None = Field(default=None, description="Sentry project slug of the app (javascript-nextjs)")
    api_url: str = Field(default="https://sentry.io", description="Sentry base URL (self-hosted, or a fake)")


class ClerkSettings(VendorSettings):
    """Clerk Backend API: the identity check (keys, instance, JWKS) and the ban / revoke levers."""

    secret_key: SecretStr | None = Field(default=None, description="Clerk secret key (sk_live_/sk_test_)")
    publishable_key: str | None = Field(default=None, description="Clerk publishable key (public; pk_...)")
    api_url: str = Field(default="https://api.clerk.com", description="Clerk Backend API (a fake in tests)")


class ClamdSettings(VendorSettings):
    """clamd, the antivirus of runbook 4 (suspicious upload); host None: the platform's simulated antivirus."""

    host: str | None = Field(default=None, description="clamd for scans and RELOAD; None: simulated antivirus")
    port: int = Field(default=3310, ge=1, le=65535)


class SlackSettings(VendorSettings):
    """Slack (remediation.notify.slack, remediation.intake.slack_interactions). The webhook URL is a credential:
    environment or a Prefect Secret block named in the configuration file, never a flow parameter, never logged."""

    webhook_url: SecretStr | None = Field(default=None, description="Slack incoming webhook (it is the secret)")
    signing_secret: SecretStr | None = Field(
        default=None, description="Slack app signing secret: Approve/Deny buttons on approval messages, and the "
                                  "proof of a click POSTed to /slack/interactions")


class StatuspageSettings(VendorSettings):
    """Statuspage (remediation.notify.statuspage). The API key is a credential, like Slack's webhook."""

    api_key: SecretStr | None = Field(default=None, description="Statuspage API key (Authorization: OAuth)")
    page_id: str | None = None
    component_ids: Annotated[list[str], NoDecode] = Field(
        default_factory=list, description="Statuspage components of the app, set to an outage status while open")
    api_url: str = Field(default="https://api.statuspage.io/v1", description="Statuspage API (a fake in tests)")

    @field_validator("component_ids", mode="before")
    @classmethod
    def _split(cls, value: object) -> object:
        return comma_list(value)


class PagerDutySettings(VendorSettings):
    """PagerDuty Events v2 (remediation.notify.pagerduty), one routing key per tier of the escalation ladder. The
    routing keys are credentials, like Slack's webhook."""

    routing_key: SecretStr | None = Field(default=None, description="PagerDuty Events v2 integration key of "
                                          "the primary on-call")
    secondary_routing_key: SecretStr | None = Field(default=None, description="... of the secondary on-call")
    duty_manager_routing_key: SecretStr | None = Field(default=None, description="... of the duty manager")
    events_url: str = Field(default="https://events.pagerduty.com/v2/enqueue",
                            description="PagerDuty Events API v2 (a fake in tests)")


class FlatField(NamedTuple):
    """A setting under its flat name: ``group`` None for a top-level field, else the group field holding ``name``."""

    group: str | None
    name: str
    info: FieldInfo


def group_model(info: FieldInfo) -> type[BaseModel] | None:
    """The model of a group field (a field whose type is a pydantic model), else None."""
    annotation = info.annotation
    return annotation if isinstance(annotation, type) and issubclass(annotation, BaseModel) else None


@functools.cache
def flat_fields(model_cls: type[BaseModel]) -> dict[str, FlatField]:
    """Every setting of ``model_cls`` by its flat name: a top-level field by its name, a group's field as
    ``<group>_<field>``."""
    found: dict[str, FlatField] = {}
    for name, info in model_cls.model_fields.items():
        model = group_model(info)
        members = ([(f"{name}_{sub}", FlatField(name, sub, sub_info)) for sub, sub_info in model.model_fields.items()]
                   if model is not None else [(name, FlatField(None, name, info))])
        for flat, field in members:
            if flat in found:
                raise TypeError(f"{model_cls.__name__}: two settings are named {flat}")
            found[flat] = field
    return found


def is_secret(info: FieldInfo) -> bool:
    annotation = info.annotation
    return annotation is SecretStr or SecretStr in typing.get_args(annotation)


def nest(values: Mapping[str, Any], model_cls: type[BaseModel]) -> dict[str, Any]:
    """``values`` with each group's flat names folded into the group: ``{"aws_region": "x"}`` becomes
    ``{"aws": {"region": "x"}}``. A flat name wins over the same field given inside its group."""
    fields = flat_fields(model_cls)
    out = dict(values)
    for key, value in values.items():
        field = fields.get(key)
        if field is None or field.group is None:
            continue
        group = out.get(field.group)
        if isinstance(group, BaseModel | Mapping):
            group = dict(group)
        elif field.group not in out:
            group = {}
        else:
            continue  # the group itself is given as something else: its validation says so
        group[field.name] = value
        out[field.group] = group
        del out[key]
    return out


def flat_values(settings: BaseModel) -> dict[str, Any]:
    """Every setting's value by its flat name, nested ones included."""
    values: dict[str, Any] = {}
    for flat, field in flat_fields(type(settings)).items():
        holder = settings if field.group is None else getattr(settings, field.group)
        values[flat] = getattr(holder, field.name)
    return values


def flat_location(loc: tuple[int | str, ...], model_cls: type[BaseModel]) -> str:
    """A validation error's location under the setting's flat name (``("aws", "max_attempts")`` is
    ``aws_max_attempts``, the name in REMEDIATE_AWS_MAX_ATTEMPTS and in ``[aws] max_attempts``)."""
    parts = [str(part) for part in loc]
    if len(parts) > 1 and f"{parts[0]}_{parts[1]}" in flat_fields(model_cls):
        parts[:2] = [f"{parts[0]}_{parts[1]}"]
    return ".".join(parts)


class VendorEnvSource(EnvSettingsSource):
    """The environment, where each group's field is read under its flat name (``REMEDIATE_AWS_REGION`` into
    ``aws.region``), then under its ``env_aliases``. Every other field is read as pydantic-settings always does."""

    @classmethod
    def replacing(cls, source: PydanticBaseSettingsSource) -> VendorEnvSource:
        """This source in place of pydantic-settings' own environment ``source``, configured as it is."""
        if not isinstance(source, EnvSettingsSource):
            return cls(source.settings_cls)
        return cls(source.settings_cls, case_sensitive=source.case_sensitive, env_prefix=source.env_prefix,
                   env_prefix_target=source.env_prefix_target, env_ignore_empty=source.env_ignore_empty,
                   env_parse_none_str=source.env_parse_none_str, env_parse_enums=source.env_parse_enums)

    def env_names(self, group: str, name: str, model: type[BaseModel]) -> list[str]:
        aliases = model.env_aliases.get(name, ()) if issubclass(model, VendorSettings) else ()
        return [self._apply_case_sensitive(env) for env in (f"{self.env_prefix}{group}_{name}", *aliases)]

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        model = group_model(field)
        if model is None:
            return super().get_field_value(field, field_name)
        values: dict[str, Any] = {}
        for name, info in model.model_fields.items():
            raw = next((v for env in self.env_names(field_name, name, model)
                        if (v := self.env_vars.get(env)) is not None), None)
            if raw is not None:  # decoded as a top-level field would be (JSON for complex types unless NoDecode)
                values[name] = super().prepare_field_value(name, info, raw, False)
        return values or None, field_name, False

    def prepare_field_value(self, field_name: str, field: FieldInfo, value: Any, value_is_complex: bool) -> Any:
        if group_model(field) is not None:
            return value  # already the group's values (get_field_value)
        return super().prepare_field_value(field_name, field, value, value_is_complex)
