"""The runbooks' Custom run form text: every parameter's title, help text and default, per runbook.

Collected from the flat flow signatures before the parameter models replaced them (commit f2e3c7e): this is the
product's UI text, checked against the schema Prefect builds (tests/unit/test_runbook_parameters.py) and against the
form the Prefect UI shows (tests/browser).
"""

from __future__ import annotations

from typing import Any

# Parameters with the same title and help text in every runbook that takes them.
SHARED: dict[str, tuple[str, str]] = {
    "service": ("Service",
        "The service to remediate. One run per service acts at a time; others wait (see Lock wait)."),
    "mode": ("Mode",
        "dry_run: plan and record, change nothing. approve: every change waits for a human. auto: reversible steps "
        "run within policy, destructive ones still ask. None: the REMEDIATE_MODE setting (default approve)."),
    "severity": ("Incident severity",
        "Sets the escalation's acknowledgement SLA: SEV1 5 min, SEV2 10 min, SEV3/SEV4 30 min."),
    "confirm_samples": ("Confirming readings",
        "Readings that must all breach before the run acts. None: 2 for a run started by hand, 1 when an alert "
        "started it (the alert rule already required persistence)."),
    "sample_interval_s": ("Seconds between readings",
        "Pause between the confirming readings of the identify phase."),
    "verify_consecutive": ("Healthy readings to recover",
        "Healthy readings in a row that prove the fix held. None: the REMEDIATE_VERIFY_CONSECUTIVE setting (default "
        "3)."),
    "verify_interval_s": ("Seconds between verification readings",
        "Pause between the readings that verify recovery. None: the REMEDIATE_VERIFY_INTERVAL_S setting (default "
        "15)."),
    "verify_deadline_s": ("Verification deadline (s)",
        "Time the fix has to prove itself; after it the fix counts as failed and the run escalates. None: the "
        "REMEDIATE_VERIFY_DEADLINE_S setting (default 600)."),
    "approval_timeout_s": ("Approval timeout (s)",
        "How long a step waits for an approver; no answer counts as deny. None: the REMEDIATE_APPROVAL_TIMEOUT_S "
        "setting (default 900)."),
    "alert_name": ("Alert name",
        "The alert that started the run; 'manual' for a run started by hand."),
    "incident_id": ("Incident id",
        "An incident opened by alert intake that this run adopts. None (the usual for a manual run): a new "
        "incident."),
    "lock_timeout_s": ("Lock wait (s)",
        "While another run remediates the same service, wait this long for it, then escalate without acting. None: "
        "wait indefinitely."),
    "continue_at_recover": ("Continue at recover",
        "Set by the reconciler when a run died after its fix was applied: this run adopts the incident (Incident "
        "id), skips identify, contain and remediate, verifies again and undoes the containment. Leave off when "
        "starting a run by hand."),
}
# Each runbook's own parameters (and names whose text differs between runbooks).
OWN: dict[str, dict[str, tuple[str, str]]] = {
    "auth-access": {
        "forbidden_pct": ("Admin 403 share (%)",
            "Share of the recent admin-area requests answered 403 above which admins are being refused; after the "
            "fix it must be at or below this. At baseline only customers poking at the admin area are refused."),
        "min_admin_records": ("Minimum admin requests",
            "Fewer admin-area requests than this among the records read: the denial rate is unknown and the run "
            "escalates without changing anything."),
        "refused_pct": ("Refused admin checks (%)",
            "Share of the middleware's admin checks ending in 'Admin role check failed' or 'errored' above which "
            "the checks are failing."),
        "min_refused": ("Minimum refused checks",
            "Refused admin checks in the event window below which the logs show no incident, whatever the share."),
        "window_records": ("Records per reading",
            "How many of the app's most recent request records a reading uses (the app keeps 500; admin traffic is "
            "a small part of them)."),
        "event_window_s": ("Event window (s)",
            "How far back a reading counts the middleware's security events."),
    },
    "database-errors": {
        "min_failures": ("Failures to act on",
            "Failed database operations (in the app's recent metric samples, or logged within the log window) at or "
            "above which the database is in breach."),
        "slow_op_ms": ("Slow operation p95 (ms)",
            "p95 of one table and operation above which it is too slow (the app calls a database operation over 500 "
            "ms slow)."),
        "min_slow": ("Slow operations to act on",
            "'Slow database operation' lines within the log window at or above which the database is in breach."),
        "window_samples": ("Samples per reading",
            "How many of the most recent db_operation_duration samples one reading uses."),
        "log_window_s": ("Log window (s)",
            "How far back the identify phase reads the app's database log lines."),
        "long_running_s": ("Lock held too long (s)",
            "A blocking session whose transaction has been open this long is terminated (with approval); also the "
            "floor for the long-running session report. None: the REMEDIATE_DB_LONG_RUNNING_S setting (default 30)."),
        "min_seq_scans": ("Sequential scans to judge",
            "Tables with fewer sequential scans are not judged for a missing index. None: the "
            "REMEDIATE_DB_MIN_SEQ_SCANS setting (default 50)."),
        "deploy_lookback_s": ("Deploy lookback (s)",
            "A release promoted within this many seconds, with no lock or index cause, is rolled back (with "
            "approval). Otherwise no fix is known: escalate."),
        "probe_requests": ("Probe requests",
            "GETs of public pages the load probe sends after the fix (they count against the app's 100 "
            "requests/min). None: the REMEDIATE_PROBE_REQUESTS setting (default 20)."),
        "probe_p95_ms": ("Probe p95 limit (ms)",
            "The probe's p95 must stay below this (the app's load-test gate). None: the REMEDIATE_PROBE_P95_MS "
            "setting (default 500)."),
        "probe_error_pct": ("Probe error limit (%)",
            "The probe's share of failed requests must stay below this. None: the REMEDIATE_PROBE_ERROR_PCT setting "
            "(default 1)."),
    },
    "elevated-error-rate": {
        "threshold_pct": ("5xx threshold (%)",
            "Share of the recent requests answered 5xx above which the error rate is a breach; after the fix it "
            "must stay below this."),
        "min_records": ("Minimum request records",
            "Fewer request records than this in a reading: the signal is unknown, and the run escalates without "
            "changing anything."),
        "window_records": ("Records per reading",
            "How many of the most recent request records one reading uses. None: the "
            "REMEDIATE_METRICS_WINDOW_RECORDS setting (default 100)."),
        "deploy_lookback_s": ("Deploy/flag lookback (s)",
            "A release promoted within this many seconds is rolled back (with approval); else a feature flag "
            "switched on within it is switched off. Neither: no fix is known, escalate."),
    },
    "high-latency": {
        "p95_threshold_ms": ("p95 threshold (ms)",
            "p95 of the recent requests above which latency is a breach; after containment it must stay at or under "
            "it. None: the REMEDIATE_LATENCY_P95_MS setting (default 500, the app's load-test bar)."),
        "avg_warning_ms": ("Average warning (ms)",
            "An average response time above this is a breach too. None: the REMEDIATE_LATENCY_AVG_WARNING_MS "
            "setting (default 1000, the app's health rule)."),
        "avg_critical_ms": ("Average critical (ms)",
            "An average above this is reported as critical (informational). None: the "
            "REMEDIATE_LATENCY_AVG_CRITICAL_MS setting (default 2000)."),
        "error_threshold_pct": ("5xx ceiling while watching (%)",
            "During the recovery watch the 5xx share must stay below this."),
        "window_records": ("Records per reading",
            "How many of the most recent request records one reading uses. None: the "
            "REMEDIATE_METRICS_WINDOW_RECORDS setting (default 100)."),
        "min_records": ("Minimum request records",
            "Fewer request records than this in a reading: the signal is unknown, and the run escalates without "
            "changing anything."),
        "scale_factor": ("Scale factor",
            "Scale up to ceil(current replicas x this), capped by REMEDIATE_MAX_REPLICAS; policy refuses more than "
            "REMEDIATE_MAX_SCALE_FACTOR."),
        "ttl_s": ("Scale-up TTL (s)",
            "How long the extra replicas are kept before the run scales back down (after a healthy watch). None: "
            "the REMEDIATE_SCALE_TTL_S setting (default 3600)."),
        "watch_s": ("Recovery watch (s)",
            "How long latency and the 5xx share are watched after containment (the app's runbook says 1-2 h). None: "
            "the REMEDIATE_LATENCY_WATCH_S setting (default 3600)."),
        "watch_interval_s": ("Seconds between watch checks",
            "One check of p95, average and 5xx per interval. None: the REMEDIATE_VERIFY_INTERVAL_S setting (default "
            "15)."),
        "deploy_lookback_s": ("Change lookback (s)",
            "A release promoted or a change made within this many seconds before now is treated as the suspected "
            "cause."),
    },
    "rolling-restart": {
        "drill": ("Drill",
            "A rehearsal while nothing is wrong (the weekly schedule sets it). A drill of a service listed in "
            "REMEDIATE_DRILL_PREAPPROVED restarts without asking; anything else waits for one approval first."),
        "max_unavailable": ("Instances out at a time",
            "Batch size: this many instances are drained and restarted together (never all of them)."),
        "error_threshold_pct": ("5xx ceiling (%)",
            "The SLO: the 5xx share of the recent requests (pooled over the instances, and per instance) and of the "
            "load balancer's own answers must stay below this."),
        "p95_threshold_ms": ("p95 ceiling (ms)",
            "The SLO: p95 of the recent requests must stay at or under this. None: the REMEDIATE_LATENCY_P95_MS "
            "setting (default 500)."),
        "window_records": ("Records per reading",
            "How many of the most recent request records one reading uses. None: the "
            "REMEDIATE_METRICS_WINDOW_RECORDS setting (default 100)."),
        "min_records": ("Minimum requests per instance",
            "An instance that has served fewer requests than this (a restarted one) makes the reading unknown: the "
            "run waits for it, up to the stability timeout."),
        "stable_checks": ("Readings to be stable",
            "SLO readings in a row that must pass after each batch (and at the end) before the run goes on."),
        "check_interval_s": ("Seconds between SLO readings",
            "One reading of every instance per interval, also while an instance is out. None: the "
            "REMEDIATE_VERIFY_INTERVAL_S setting (default 15)."),
        "stable_timeout_s": ("Stability timeout (s)",
            "A batch whose service is not stable again within this stops the run. None: the "
            "REMEDIATE_VERIFY_DEADLINE_S setting (default 600)."),
        "drain_timeout_s": ("Drain timeout (s)",
            "How long a drained instance may take to finish its requests in flight. None: the load balancer's "
            "deregistration delay plus 30 s."),
        "restart_timeout_s": ("Restart timeout (s)",
            "How long a restarted instance may take to run again and pass its health checks. None: the "
            "REMEDIATE_RESTART_TIMEOUT_S setting (default 300)."),
    },
    "suspicious-upload": {
        "window_s": ("Look-back window (s)",
            "How far back the audit rows and the app's upload log lines are read. None: the "
            "REMEDIATE_UPLOAD_WINDOW_S setting (default 600)."),
        "min_detections": ("Malware uploads to act on",
            "Malware rejections (audit rows or log lines) at or above which uploads are under attack, and from one "
            "client at or above which that client is blocked. None: the REMEDIATE_UPLOAD_MIN_DETECTIONS setting "
            "(default 3)."),
        "min_rejections": ("Rejection burst (samples)",
            "upload_rejected_validation samples on the metrics page (half or more of the uploads) that count as a "
            "burst when neither the audit rows nor the logs can say why. None: the REMEDIATE_UPLOAD_MIN_REJECTIONS "
            "setting (default 5)."),
        "block_ttl_s": ("Block TTL (s)",
            "How long each block lasts at the edge; blocks are left to expire. None: the REMEDIATE_BLOCK_TTL_S "
            "setting (default 3600); policy caps it at REMEDIATE_MAX_BLOCK_TTL_S."),
        "max_blocks": ("Most clients to block",
            "More offending clients than this is not one attack (or the scanner rejects everything): nobody is "
            "blocked and a human decides."),
        "tighten_allowlist": ("Tighten the allowlist",
            "Drop the file extensions and MIME types the attack's quarantined samples came in as from what "
            "/api/uploads accepts, until recovery is verified."),
    },
}
# Every parameter of every runbook with its default, as the schema shows it (JSON).
DEFAULTS: dict[str, dict[str, Any]] = {
    "auth-access": {
        "service": "kamkmserve", "mode": None, "severity": "sev2", "forbidden_pct": 50.0, "min_admin_records": 10,
        "refused_pct": 50.0, "min_refused": 5, "window_records": 500, "event_window_s": 120.0, "confirm_samples": None,
        "sample_interval_s": 5.0, "verify_consecutive": None, "verify_interval_s": None, "verify_deadline_s": None,
        "approval_timeout_s": None, "alert_name": "manual", "incident_id": None, "lock_timeout_s": 1800.0,
        "continue_at_recover": False,
    },
    "database-errors": {
        "service": "kamkmserve", "mode": None, "severity": "sev2", "min_failures": 3, "slow_op_ms": 500.0,
        "min_slow": 3, "window_samples": 1000, "log_window_s": 300.0, "confirm_samples": None,
        "sample_interval_s": 5.0, "long_running_s": None, "min_seq_scans": None, "deploy_lookback_s": 3600.0,
        "verify_consecutive": None, "verify_interval_s": None, "verify_deadline_s": None, "probe_requests": None,
        "probe_p95_ms": None, "probe_error_pct": None, "approval_timeout_s": None, "alert_name": "manual",
        "incident_id": None, "lock_timeout_s": 1800.0, "continue_at_recover": False,
    },
    "elevated-error-rate": {
        "service": "kamkmserve", "mode": None, "severity": "sev2", "threshold_pct": 1.0, "min_records": 20,
        "window_records": None, "confirm_samples": None, "sample_interval_s": 5.0, "deploy_lookback_s": 3600.0,
        "verify_consecutive": None, "verify_interval_s": None, "verify_deadline_s": None, "approval_timeout_s": None,
        "alert_name": "manual", "incident_id": None, "lock_timeout_s": 1800.0, "continue_at_recover": False,
    },
    "high-latency": {
        "service": "kamkmserve", "mode": None, "severity": "sev2", "p95_threshold_ms": None, "avg_warning_ms": None,
        "avg_critical_ms": None, "error_threshold_pct": 1.0, "window_records": None, "min_records": 20,
        "confirm_samples": None, "sample_interval_s": 5.0, "scale_factor": 2.0, "ttl_s": None, "watch_s": None,
        "watch_interval_s": None, "deploy_lookback_s": 3600.0, "approval_timeout_s": None, "alert_name": "manual",
        "incident_id": None, "lock_timeout_s": 1800.0, "continue_at_recover": False,
    },
    "rolling-restart": {
        "service": "kamkmserve", "mode": None, "severity": "sev3", "drill": False, "max_unavailable": 1,
        "error_threshold_pct": 1.0, "p95_threshold_ms": None, "window_records": None, "min_records": 10,
        "stable_checks": 3, "check_interval_s": None, "stable_timeout_s": None, "drain_timeout_s": None,
        "restart_timeout_s": None, "approval_timeout_s": None, "alert_name": "manual", "incident_id": None,
        "lock_timeout_s": 1800.0,
    },
    "suspicious-upload": {
        "service": "kamkmserve", "mode": None, "severity": "sev1", "window_s": None, "min_detections": None,
        "min_rejections": None, "block_ttl_s": None, "max_blocks": 5, "tighten_allowlist": True,
        "verify_consecutive": None, "verify_interval_s": None, "verify_deadline_s": None, "approval_timeout_s": None,
        "alert_name": "manual", "incident_id": None, "lock_timeout_s": 1800.0,
    },
}


def expected_form(runbook: str) -> dict[str, tuple[str, str, Any]]:
    """``{parameter: (title, description, default)}`` in the order of the form before the models."""
    return {name: (*(OWN[runbook].get(name) or SHARED[name]), default) for name, default in DEFAULTS[runbook].items()}
