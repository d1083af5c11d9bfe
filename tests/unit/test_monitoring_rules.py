"""The alerting rules of docs/monitoring/rules.yml: valid for Prometheus, firing when they should (their promtool unit
tests), and written against series the receiver's /metrics really exposes."""

from __future__ import annotations

import re
import shutil
import subprocess
import warnings
from pathlib import Path

import yaml
from prometheus_client.parser import text_string_to_metric_families

from remediation.intake import create_app
from remediation.settings import Settings
from remediation.store import Store
from tests.helpers.services import require_service

with warnings.catch_warnings():
    warnings.filterwarnings("ignore", message=".*httpx2.*")
    from starlette.testclient import TestClient

RULES_DIR = Path(__file__).resolve().parents[2] / "docs" / "monitoring"


def promtool(*args: str) -> subprocess.CompletedProcess[str]:
    binary = shutil.which("promtool")
    require_service("promtool", binary is not None, "promtool is not installed (apt-get install prometheus)")
    assert binary is not None
    return subprocess.run([binary, *args], cwd=RULES_DIR, capture_output=True, text=True, timeout=60, check=False)


def test_promtool_accepts_the_rules() -> None:
    result = promtool("check", "rules", "rules.yml")
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_rules_fire_as_their_promtool_unit_tests_expect() -> None:
    result = promtool("test", "rules", "rules_test.yml")
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_series_the_rules_use_is_one_the_receiver_exposes(tmp_path: Path) -> None:
    store = Store(f"sqlite:///{tmp_path / 'remediate.db'}")
    store.migrate()

    class NoStarts:
        async def start(self, deployment: str, parameters: dict[str, object], idempotency_key: str) -> str:
            raise AssertionError("no run is started by a scrape")

    try:
        text = TestClient(create_app(Settings(), store, NoStarts())).get("/metrics").text
    finally:
        store.dispose()
    exposed = set()
    for family in text_string_to_metric_families(text):
        exposed.add(family.name)
        exposed.update(sample.name for sample in family.samples)
        if family.type == "counter":
            exposed.add(f"{family.name}_total")  # declared even while the family has no sample yet
    rules = yaml.safe_load((RULES_DIR / "rules.yml").read_text())
    used = {name for group in rules["groups"] for rule in group["rules"]
            for name in re.findall(r"\bremediate_[a-z_]+", rule["expr"])}

    assert used, "the rules name no remediate_ series"
    assert used <= exposed, f"not exposed by /metrics: {sorted(used - exposed)}"
