"""Configuration, read from ``REMEDIATE_*`` environment variables when ``Settings()`` is built, never at import."""

from __future__ import annotations

import ipaddress
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import AliasChoices, Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, PydanticBaseSettingsSource, SettingsConfigDict

from remediation.approvers import NAME_MAX, ApproverFactor, valid_name
from remediation.choices import validate as validate_choices
from remediation.config_file import ConfigFileSource
from remediation.models import Mode
from remediation.policy import DEFAULT_NEVER_BLOCK
from remediation.settings_vendors import (
    AwsSettings,
    ClamdSettings,
    ClerkSettings,
    PagerDutySettings,
    SentrySettings,
    SlackSettings,
    StatuspageSettings,
    VendorEnvSource,
    VercelSettings,
    comma_list,
    flat_location,
    nest,
)


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
    # proxies (remediation.providers.xff); clamd.host None: the platform's simulated antivirus.
    trusted_proxy_cidrs: Annotated[list[str], NoDecode] = Field(
        default_factory=lambda: list(DEFAULT_NEVER_BLOCK),
        description="Our load balancers and proxies: x-forwarded-for hops inside these are not the client")
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
    intake_max_body_bytes: int = Field(default=1_000_000, ge=1024)
    intake_read_timeout_s: float = Field(default=10.0, gt=0, description="A request's head, then its body, must "
                                         "arrive within this; else 408 and the connection is closed")
    reopen_cooldown_s: float = Field(default=600.0, ge=0)
    intake_mode: Mode = Field(default=Mode.APPROVE, description="Mode of runs started by alerts")

    # The app's own log output read where it really lands (remediation.providers.file_logs / drain_logs): files of a
    # self-hosted `next start >app.log 2>app.err`, or a Vercel Log Drain delivered to the receiver's /logs/vercel.
    log_files: Annotated[list[Path], NoDecode] = Field(
        default_factory=list, description="The app's stdout/stderr log files (comma-separated), read by logs=file")
    log_drain_retention_s: float = Field(default=6 * 3600.0, gt=0, description="How long drained log lines are kept")

    # Notifications (remediation.notify) and the escalation ladder. The Slack webhook URL, the Statuspage key and the
    # PagerDuty routing keys are credentials: environment or a Prefect Secret block named in the configuration file
    # (remediation.config_file), never flow parameters, never logged.
    notify_channels: Annotated[list[str] | None, NoDecode] = Field(
        default=None, description="slack, statuspage, pagerduty (comma-separated); None: every channel whose "
                                  "credentials are set; empty: none")
    notify_timeout_s: float = Field(default=5.0, gt=0, description="Bound on one notification, all retries included")
    prefect_ui_url: str | None = Field(default=None, description="Prefect UI for run links in notifications; None: "
                                       "Prefect's own PREFECT_UI_URL (derived from PREFECT_API_URL)")
    # Ack time per severity (docs/reference/kamkmserve.md §10): an approval unanswered this long pages the next tier.
    ack_sev1_s: float = Field(default=300.0, gt=0)
    ack_sev2_s: float = Field(default=600.0, gt=0)
    ack_sev3_s: float = Field(default=1800.0, gt=0)
    ack_sev4_s: float = Field(default=1800.0, gt=0)
    # Per-capability implementation overrides on top of the platform's bundle (remediation.composition), e.g.
    # {"errors": "sentry", "identity": "clerk"}; env as JSON: REMEDIATE_CAPABILITIES='{"errors": "sentry"}'.
    capabilities: dict[str, str] = Field(default_factory=dict)

    # One group per vendor (remediation.settings_vendors), read as settings.aws.region. Outside the code the names are
    # flat, as they always were: REMEDIATE_AWS_REGION, [aws] region = ... in remediate.toml, Settings(aws_region=...).
    aws: AwsSettings = Field(default_factory=AwsSettings)
    vercel: VercelSettings = Field(default_factory=VercelSettings)
    sentry: SentrySettings = Field(default_factory=SentrySettings)
    clerk: ClerkSettings = Field(default_factory=ClerkSettings)
    clamd: ClamdSettings = Field(default_factory=ClamdSettings)
    slack: SlackSettings = Field(default_factory=SlackSettings)
    statuspage: StatuspageSettings = Field(default_factory=StatuspageSettings)
    pagerduty: PagerDutySettings = Field(default_factory=PagerDutySettings)

    @model_validator(mode="before")
    @classmethod
    def _fold_flat_names(cls, data: Any) -> Any:
        """``Settings(aws_region="x")``: a group's field given by its flat name lands in its group."""
        return nest(data, cls) if isinstance(data, dict) else data

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

    @field_validator("approvers", "preapproved", "never_block_cidrs", "trusted_proxy_cidrs", "notify_channels",
                     "drill_preapproved", "log_files", mode="before")
    @classmethod
    def _split(cls, value: object) -> object:
        return comma_list(value)

    @classmethod
    def settings_customise_sources(
        cls, settings_cls: type[BaseSettings], init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource, dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        """Arguments win, then ``REMEDIATE_*`` variables, then the configuration file (``REMEDIATE_CONFIG`` or
        ``./remediate.toml``, see remediation.config_file and docs/configuration.md), then the defaults. The
        environment is read by VendorEnvSource: the vendor groups' fields under their flat names."""
        environment = VendorEnvSource.replacing(env_settings)
        return init_settings, environment, dotenv_settings, ConfigFileSource(settings_cls), file_secret_settings

    @property
    def resolved_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.home / 'remediate.db').resolve()}"


def error_lines(exc: ValidationError) -> list[str]:
    """One line per error of a ``Settings`` validation, the setting by its flat name (``aws_max_attempts``, as in
    REMEDIATE_AWS_MAX_ATTEMPTS and ``[aws] max_attempts``): what the CLI prints, never pydantic's block."""
    return [f"{flat_location(error['loc'], Settings) or 'settings'}: {error['msg']}" for error in exc.errors()]
