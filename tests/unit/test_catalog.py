"""Every runbook in the catalogue is a deployment in prefect.yaml with the same name and entrypoint."""

from __future__ import annotations

from pathlib import Path

import yaml

from remediation import catalog

REPO = Path(__file__).resolve().parents[2]


def deployments() -> dict[str, dict[str, object]]:
    spec = yaml.safe_load((REPO / "prefect.yaml").read_text())
    return {d["name"]: d for d in spec["deployments"]}


def test_every_runbook_has_a_deployment_with_its_entrypoint() -> None:
    found = deployments()
    for name, entrypoint in catalog.RUNBOOKS.items():
        assert name in found, f"{name} missing from prefect.yaml"
        assert found[name]["entrypoint"] == entrypoint


def test_every_deployment_entrypoint_loads_a_flow_named_like_the_deployment() -> None:
    for name, deployment in deployments().items():
        flow = catalog.load(name)
        assert flow.name == name
        path = str(deployment["entrypoint"]).split(":")[0]
        assert Path(path).stem.replace("_", "-") == name
        assert (REPO / path).is_file()
