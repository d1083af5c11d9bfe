"""Configuration, read from ``REMEDIATE_*`` environment variables when ``Settings()`` is built, never at import."""

from __future__ import annotations

import ipaddress
from pathlib import Path
from typing import Annotated, Literal

from pydantic import AliasChoices, Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, PydanticBaseSettingsSource, SettingsConfigDict

from remediation.approvers import NAME_MAX, ApproverFactor, valid_name
from remediation.choices import validate as validate_choices
from remediation.config_file import ConfigFileSource
from remediation.models import Mode
from remediation.policy import DEFAULT_NEVER_BLOCK


def _comma_list(value: object) -> object:
    if isinstance(value, str):
        return [item.strip() for item in value.split(",") if item.strip()]
    return value


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="REMEDIATE_", extra="ignore", populate_by_name=True)

    # Where the application and its platform are.
    app_url: str = "http://127.0.0.1:3000"
    # No default on purpose: without a platform no lever exists, and nothing mutates (remediation.composition).
    platform: Literal["sim", "aws", "vercel"] | None = Field(
        default=None, description="The lever provider: sim, aws or vercel; unset: read, plan, record, escalate")
    sim_url: str | None = Field(
        default=None, description="The simulator's control plane (required with platform sim; never the app's URL)")
    sim_virtual_time: bool = Field(
        default=False, description="The simulator runs on virtual time (python -m kamkmserve_sim --virtual-time): the "
        "runbooks' waits advance it (POST /_sim/time/advance); only with platform sim, ignored on any other")

    # Where we keep our own records.
    # REMEDIATE_STATE_DIR is another name for it (REMEDIATE_HOME wins when both are set).
    home: Path = Field(default=Path(".remediate"),
                       validation_alias=AliasChoices("REMEDIATE_HOME", "REMEDIATE_STATE_DIR"))
    database_url: str | None = None
    prefect_database_url: str | None = Field(
        default=None, description="PostgreSQL for the local Prefect server `remediate serve` starts (else SQLite)"
    )
    prefect_port: int = Field(
        default=4200, ge=1, le=65535, description="Port of the local Prefect server `remediate serve` starts; when "
        "taken, the next free one (a warning names it)")
    # Liveness of executing runs (remediation.orchestration.leases): the process executing a run renews the run's
    # lease every run_lease_renew_s; a lease not renewed for run_lease_s means that process is gone, and the next
    # reconcile (every reconcile_interval_s in each `remediate serve`) crashes the run and closes its incident.
    run_lease_s: float = Field(default=60.0, ge=2.0, description="A run whose lease is this old is dead")
    run_lease_renew_s: float = Field(default=15.0, gt=0, description="How often the executing process renews it")
    reconcile_interval_s: float = Field(default=30.0, gt=0, description="How often `remediate serve` reconciles")

    # Who may approve, and how long a run waits for them.
    mode: Mode = Mode.APPROVE
    approvers: Annotated[list[str], NoDecode] = Field(default_factory=list)
    preapproved: Annotated[list[str], NoDecode] = Field(
        default_factory=list, description="Destructive plan kinds that configuration pre-approves"
    )
    # Enrolled approvers (remediate.toml [approvers.NAME], remediation.approvers): what proves each one's answers.
    approver_factors: dict[str, ApproverFactor] = Field(default_factory=dict)
    # Distinct approvers per step, "<severity>:<risk>" -> count ("*" for any); {"sev1:destructive": 2} applies
    # unless overridden. Env as JSON: REMEDIATE_MIN_APPROVERS='{"sev2:destructive": 2}'.
    min_approvers: dict[str, int] = Field(default_factory=dict)
    approval_timeout_s: int = Field(default=900, ge=5)
    approval_poll_s: int = Field(default=2, ge=1)

    # Blast radius.
    kill_switch: bool = False
    max_actions_per_service_per_hour: int = Field(default=10, ge=1)  # a rolling restart counts once (policy.py)
    # Instances of one service restarted in an hour, whatever run restarted them.
    max_restart_instances_per_hour: int = Field(default=20, ge=1)
    max_maintenance_prefixes: int = Field(default=5, ge=1)
    max_replicas: int = Field(default=20, ge=1)
    max_scale_factor: float = Field(default=3.0, ge=1.0)
    never_block_cidrs: Annotated[list[str], NoDecode] = Field(
        default_factory=lambda: list(DEFAULT_NEVER_BLOCK),
        description="Networks no automatic block may touch (our LBs, proxies, health checkers)")
    max_block_ttl_s: int = Field(default=86_400, ge=60)

    # Reading the application. The real app allows 100 requests/min per IP, scrapes included.
    metrics_budget_per_min: int = Field(default=30, ge=1, le=100)
    http_timeout_s: float = Field(default=5.0, gt=0)
    metrics_window_records: int = Field(default=100, ge=10, le=500)

    # Verification defaults (runbooks may override per run).
    verify_interval_s: float = Field(default=15.0, gt=0)
    verify_consecutive: int = Field(default=3, ge=1)
    verify_deadline_s: float = Field(default=600.0, gt=0)

    # Runbook 2 (high latency). Thresholds are the app's own (docs/reference/kamkmserve.md §11): load-test p95 < 500 ms;
    # the health rule's average response time warns above 1000 ms and is critical above 2000 ms.
    latency_p95_ms: float = Field(default=500.0, gt=0)
    latency_avg_warning_ms: float = Field(default=1000.0, gt=0)
    latency_avg_critical_ms: float = Field(default=2000.0, gt=0)
    scale_ttl_s: int = Field(default=3600, ge=1, description="How long a latency scale-up is kept before scaling back")
    latency_watch_s: float = Field(default=3600.0, gt=0, description="Recovery watch (the app's runbook: 1-2 h)")

    # Runbook 3 (database errors). The application's PostgreSQL for the inspector (a read-only role is enough
    # for the reads; terminate and CREATE INDEX need more); None: the platform's simulated database.
    app_database_url: str | None = Field(default=None, description="kamkmserve's PostgreSQL, for the inspector")
    db_long_running_s: float = Field(default=30.0, gt=0, description="A session idle in transaction or "
                                     "holding locks this long is a termination candidate")
    db_min_seq_scans: int = Field(default=50, ge=1, description="Sequential scans before a table is judged")
    # The load probe of recovery checks: the app's load-test gate (docs/reference/kamkmserve.md §11: p95 < 500 ms,
    # errors < 1 %).
    probe_requests: int = Field(default=20, ge=1, le=100)
    probe_p95_ms: float = Field(default=500.0, gt=0)
    probe_error_pct: float = Field(default=1.0, ge=0)

    # Runbook 4 (suspicious upload). The client of a request is the right-most x-forwarded-for hop outside our own
    # proxies (remediation.providers.xff); clamd_host None: the platform's simulated antivirus.
    trusted_proxy_cidrs: Annotated[list[str], NoDecode] = Field(
        default_factory=lambda: list(DEFAULT_NEVER_BLOCK),
        description="Our load balancers and proxies: x-forwarded-for hops inside these are not the client")
    clamd_host: str | None = Field(default=None, description="clamd for scans and RELOAD; None: simulated antivirus")
    clamd_port: int = Field(default=3310, ge=1, le=65535)
    block_ttl_s: int = Field(default=3600, ge=60, description="How long an automatic block of an uploader lasts")
    upload_window_s: float = Field(default=600.0, gt=0, description="How far back the upload runbook reads the "
                                   "audit log and the app's upload log lines")
    upload_min_detections: int = Field(default=3, ge=1, description="Malware rejections from one client (or in "
                                       "total, when no client can be named) at or above which uploads are attacked")
    upload_min_rejections: int = Field(default=5, ge=1, description="upload_rejected_validation samples on the "
                                       "metrics page at or above which (half or more of the uploads) is a burst")

    # Runbook 6 (rolling restart) and drills. A drill (a run with drill=true, e.g. the weekly schedule) of a service
    # listed in drill_preapproved restarts instances without asking; every other restart waits for an approval.
    drill_preapproved: Annotated[list[str], NoDecode] = Field(
        default_factory=list, description="Services whose rolling-restart drills need no approval")
    drill_max_age_days: float = Field(default=14.0, gt=0, description="`remediate drill` flags a runbook whose last "
                                      "successful drill is older than this (the schedule drills weekly)")
    restart_timeout_s: float = Field(default=300.0, gt=0, description="How long a restarted instance may take to "
                                     "run again and pass the load balancer's health checks")

    # Alert intake (the receiver). No credentials configured means every alert delivery is refused.
    intake_token: SecretStr | None = Field(default=None, description="Bearer token for Alertmanager/generic")
    intake_basic_user: str | None = None
    intake_basic_password: SecretStr | None = None
    sentry_client_secret: SecretStr | None = Field(default=None, description="Sentry integration client secret")
    intake_max_body_bytes: int = Field(default=1_000_000, ge=1024)
    intake_read_timeout_s: float = Field(default=10.0, gt=0, description="A request's head, then its body, must "
                                         "arrive within this; else 408 and the connection is closed")
    sentry_max_age_s: int = Field(default=300, ge=1)
    reopen_cooldown_s: float = Field(default=600.0, ge=0)
    intake_mode: Mode = Field(default=Mode.APPROVE, description="Mode of runs started by alerts")

    # Our own error reporting (not the app's Sentry): on when a DSN is set.
    sentry_dsn: SecretStr | None = Field(
        default=None, validation_alias=AliasChoices("REMEDIATE_SENTRY_DSN", "SENTRY_DSN", "sentry_dsn"),
        description="sentry-sdk DSN for our own processes; unset or empty disables it")
    sentry_environment: str = "production"

    # AWS (REMEDIATE_PLATFORM=aws; remediation.providers.aws). Credentials come only from boto3's standard chain
    # (AWS_* environment, shared profile, instance or task role): never settings, never parameters, never logged.
    aws_region: str | None = Field(default=None, description="AWS region; None: boto3's own (AWS_DEFAULT_REGION)")
    aws_endpoint_url: str | None = Field(default=None, description="One endpoint for every AWS client (moto in tests)")
    aws_max_attempts: int = Field(default=5, ge=1, le=20, description="Attempts per AWS call (adaptive retry mode)")
    aws_ecs_cluster: str = Field(default="kamkmserve", description="ECS cluster of the web and worker services")
    aws_ecs_service: str = Field(default="kamkmserve", description="ECS web service: releases, and capacity when "
                                 "aws_capacity is ecs")
    aws_capacity: Literal["ecs", "asg", "none"] = Field(default="ecs", description="What scales the web service")
    aws_asg_name: str | None = Field(default=None, description="Auto Scaling group when aws_capacity is asg")
    aws_job_services: Annotated[list[str], NoDecode] = Field(
        default_factory=list, description="ECS worker services that are the job pools (comma-separated)")
    aws_waf_ip_set_name: str | None = Field(default=None, description="WAFv2 IP set of the block list; None: no lever")
    aws_waf_ip_set_id: str | None = Field(default=None, description="Its id (looked up by name when unset)")
    aws_waf_scope: Literal["REGIONAL", "CLOUDFRONT"] = "REGIONAL"
    aws_ssm_prefix: str = Field(default="/kamkmserve/remediation", description="SSM path of maintenance, flags, "
                                "upload allowlist and block TTLs")
    aws_log_group: str | None = Field(default=None, description="CloudWatch log group of the app's stdout")
    aws_log_stream_prefix: str | None = None
    aws_target_group_arn: str | None = Field(default=None, description="ELBv2 target group of the web instances")
    aws_drain_poll_s: float = Field(default=5.0, gt=0, description="Polling interval of drain/restore waits")
    # The app's own log output read where it really lands (remediation.providers.file_logs / drain_logs): files of a
    # self-hosted `next start >app.log 2>app.err`, or a Vercel Log Drain delivered to the receiver's /logs/vercel.
    log_files: Annotated[list[Path], NoDecode] = Field(
        default_factory=list, description="The app's stdout/stderr log files (comma-separated), read by logs=file")
    vercel_drain_secret: SecretStr | None = Field(default=None, description="Vercel Log Drain secret: the key of "
                                                  "x-vercel-signature; None: POST /logs/vercel refuses every delivery")
    log_drain_retention_s: float = Field(default=6 * 3600.0, gt=0, description="How long drained log lines are kept")

    # Vercel (REMEDIATE_PLATFORM=vercel; remediation.providers.vercel*): deployments, Edge Config levers and the
    # firewall's IP blocks. The token is a secret: settings or env only, never a flow parameter, never logged.
    vercel_token: SecretStr | None = Field(default=None, description="Vercel access token (Bearer)")
    vercel_team_id: str | None = Field(default=None, description="Team of the project (teamId); None: personal")
    vercel_project_id: str | None = Field(default=None, description="The kamkmserve project (prj_... or its name)")
    vercel_edge_config_id: str | None = Field(default=None, description="Edge Config (ecfg_...) holding maintenance "
                                              "prefixes, flags and the upload allowlist; None: no edge lever")
    vercel_api_url: str = Field(default="https://api.vercel.com", description="Vercel REST API (a fake in tests)")
    # Sentry REST API for the app's issues, event counts, releases and deploys (docs/reference/kamkmserve.md §9: org
    # kamkm, project javascript-nextjs). Not the DSN above: that is where our own errors go.
    sentry_api_token: SecretStr | None = Field(default=None, description="Sentry auth token (event:read, "
                                               "project:read, project:releases, org:read)")
    sentry_org: str | None = Field(default=None, description="Sentry organization slug of the app (kamkm)")
    sentry_project: str | None = Field(default=None, description="Sentry project slug of the app (javascript-nextjs)")
    sentry_api_url: str = Field(default="https://sentry.io", description="Sentry base URL (self-hosted, or a fake)")
    # Clerk Backend API: the identity check (keys, instance, JWKS) and the ban / revoke levers.
    clerk_secret_key: SecretStr | None = Field(default=None, description="Clerk secret key (sk_live_/sk_test_)")
    clerk_publishable_key: str | None = Field(default=None, description="Clerk publishable key (public; pk_...)")
    clerk_api_url: str = Field(default="https://api.clerk.com", description="Clerk Backend API (a fake in tests)")

    # Notifications (remediation.notify) and the escalation ladder. The Slack webhook URL, the Statuspage key and the
    # PagerDuty routing keys are credentials: environment or a Prefect Secret block named in the configuration file
    # (remediation.config_file), never flow parameters, never logged.
    notify_channels: Annotated[list[str] | None, NoDecode] = Field(
        default=None, description="slack, statuspage, pagerduty (comma-separated); None: every channel whose "
                                  "credentials are set; empty: none")
    notify_timeout_s: float = Field(default=5.0, gt=0, description="Bound on one notification, all retries included")
    prefect_ui_url: str | None = Field(default=None, description="Prefect UI for run links in notifications; None: "
                                       "Prefect's own PREFECT_UI_URL (derived from PREFECT_API_URL)")
    slack_webhook_url: SecretStr | None = Field(default=None, description="Slack incoming webhook (it is the secret)")
    slack_signing_secret: SecretStr | None = Field(
        default=None, description="Slack app signing secret: Approve/Deny buttons on approval messages, and the "
                                  "proof of a click POSTed to /slack/interactions")
    statuspage_api_key: SecretStr | None = Field(default=None, description="Statuspage API key (Authorization: OAuth)")
    statuspage_page_id: str | None = None
    statuspage_component_ids: Annotated[list[str], NoDecode] = Field(
        default_factory=list, description="Statuspage components of the app, set to an outage status while open")
    statuspage_api_url: str = Field(default="https://api.statuspage.io/v1",
                                    description="Statuspage API (a fake in tests)")
    pagerduty_routing_key: SecretStr | None = Field(default=None, description="PagerDuty Events v2 integration key of "
                                                    "the primary on-call")
    pagerduty_secondary_routing_key: SecretStr | None = Field(default=None, description="... of the secondary on-call")
    pagerduty_duty_manager_routing_key: SecretStr | None = Field(default=None, description="... of the duty manager")
    pagerduty_events_url: str = Field(default="https://events.pagerduty.com/v2/enqueue",
                                      description="PagerDuty Events API v2 (a fake in tests)")
    # Ack time per severity (docs/reference/kamkmserve.md §10): an approval unanswered this long pages the next tier.
    ack_sev1_s: float = Field(default=300.0, gt=0)
    ack_sev2_s: float = Field(default=600.0, gt=0)
    ack_sev3_s: float = Field(default=1800.0, gt=0)
    ack_sev4_s: float = Field(default=1800.0, gt=0)
    # Per-capability implementation overrides on top of the platform's bundle (remediation.composition), e.g.
    # {"errors": "sentry", "identity": "clerk"}; env as JSON: REMEDIATE_CAPABILITIES='{"errors": "sentry"}'.
    capabilities: dict[str, str] = Field(default_factory=dict)

    @field_validator("capabilities")
    @classmethod
    def _known_choices(cls, value: dict[str, str]) -> dict[str, str]:
        validate_choices(value)  # CapabilityError (a ValueError) names the bad capability or implementation
        return value

    @model_validator(mode="after")
    def _lease_renewed_in_time(self) -> Settings:
        if self.run_lease_renew_s * 2 > self.run_lease_s:
            # One late renewal (a slow database, a GC pause) must not get a healthy run crashed.
            raise ValueError(f"REMEDIATE_RUN_LEASE_RENEW_S ({self.run_lease_renew_s:g}) must be at most half of "
                             f"REMEDIATE_RUN_LEASE_S ({self.run_lease_s:g})")
        return self

    @model_validator(mode="after")
    def _simulator_named(self) -> Settings:
        if self.platform == "sim" and not self.sim_url:
            raise ValueError("REMEDIATE_PLATFORM=sim needs REMEDIATE_SIM_URL, the simulator's control plane (it is "
                             "never derived from REMEDIATE_APP_URL, so the app itself is never sent /_sim requests)")
        return self

    @field_validator("approvers")
    @classmethod
    def _approver_names(cls, value: list[str]) -> list[str]:
        bad = [name for name in value if not valid_name(name)]
        if bad:
            # An invalid name could never prove an answer: say so now, not at 2 a.m. when every answer is refused.
            raise ValueError(f"approver name(s) {bad!r} are not valid: letters, digits and . _ @ -, at most "
                             f"{NAME_MAX} characters")
        return value

    @field_validator("never_block_cidrs", "trusted_proxy_cidrs")
    @classmethod
    def _networks(cls, value: list[str]) -> list[str]:
        for item in value:
            ipaddress.ip_network(item, strict=False)  # ValueError names the bad entry
        return value

    @field_validator("approvers", "preapproved", "never_block_cidrs", "trusted_proxy_cidrs", "aws_job_services",
                     "notify_channels", "statuspage_component_ids", "drill_preapproved", "log_files", mode="before")
    @classmethod
    def _split(cls, value: object) -> object:
        return _comma_list(value)

    @classmethod
    def settings_customise_sources(
        cls, settings_cls: type[BaseSettings], init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource, dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        """Arguments win, then ``REMEDIATE_*`` variables, then the configuration file (``REMEDIATE_CONFIG`` or
        ``./remediate.toml``, see remediation.config_file and docs/configuration.md), then the defaults."""
        return init_settings, env_settings, dotenv_settings, ConfigFileSource(settings_cls), file_secret_settings

    @property
    def resolved_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.home / 'remediate.db').resolve()}"
