"""Settings of one simulated kamkmserve deployment."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from kamkmserve_sim.instances_config import FleetConfig


class SimConfig(BaseModel):
    model_config = ConfigDict(frozen=True)

    scenario: str = "healthy"
    seed: int | None = None
    rps: float = Field(default=20.0, ge=0.0)
    rate_limit: int = Field(default=100, ge=1)
    # True: the dead request/DB instrumentation of src/lib/metrics.ts is switched on (what the runbooks assume).
    # False ("as-is"): the app exactly as deployed today, where those series never get a sample.
    request_metrics: bool = True
    onset_s: float = Field(default=2.0, ge=0.0)
    # load-spike: how long the surge lasts after onset; None: until the scenario is reset.
    spike_s: float | None = Field(default=None, gt=0.0)
    # The app's PostgreSQL for the database scenarios (real statements, real locks); None: simulated in memory.
    database_url: str | None = None
    # The upload scanner the app's AVSCAN_URL hook would call (kamkmserve_sim.security): off (the app today),
    # reject (AVSCAN_MODE=reject) or scan (signatures; the real clamd at clamd_host when set). None: the scenario's.
    avscan: Literal["off", "reject", "scan"] | None = None
    clamd_host: str | None = None
    clamd_port: int = Field(default=3310, ge=1, le=65535)
    # kamkmserve_audit_log: True = never migrated (every audit write fails, as in production today), False = there
    # (in memory, or created in database_url with the app's DDL). None: the scenario's choice.
    audit_table_missing: bool | None = None
    # Virtual time (kamkmserve_sim.clock.ManualClock): no background users; time, traffic and scheduled events move
    # only through POST /_sim/time/advance, so a test or the demo decides when time passes, whatever the machine load.
    virtual_time: bool = False
    host: str = "127.0.0.1"
    port: int = Field(default=0, ge=0, le=65535)
    echo_logs: bool = False
    # The idle real app's heap ratio wandered between 45 % and 91 % (reference, "Observed at runtime").
    heap_ratio_low: float = Field(default=0.45, gt=0.0, lt=1.0)
    heap_ratio_high: float = Field(default=0.91, gt=0.0, lt=1.0)
    log_ring_size: int = Field(default=5000, ge=10)
    # rolling-restart scenario only: the instances behind the load balancer (kamkmserve_sim.instances).
    fleet: FleetConfig = Field(default_factory=FleetConfig)

    @model_validator(mode="after")
    def _heap_range_is_ordered(self) -> SimConfig:
        if self.heap_ratio_low > self.heap_ratio_high:
            raise ValueError("heap_ratio_low must not exceed heap_ratio_high")
        return self
