"""Two Prefect APIs, one store: each reconciler judges only the runs of its own API.

A ``remediate serve`` pointed at another API used to find no run for any incident and close them all as "run
missing". Here the session's API and a second real server share one store; a reconciler closes the dead runs it owns
(and those with no recorded owner that it finds at home), reports the others as owned elsewhere and leaves them open,
and the API's identity survives a change of URL."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from prefect import flow, get_client
from prefect.settings import PREFECT_API_URL, temporary_settings
from prefect.states import Crashed, Running
from typer.testing import CliRunner

from remediation.cli import app
from remediation.models import Alert, Mode, Outcome, Severity
from remediation.orchestration.prefect_identity import current_api
from remediation.orchestration.stack import start_local_prefect_server
from remediation.reconcile import RunVerdict, reconcile
from remediation.store import Store

pytestmark = [pytest.mark.prefect_server, pytest.mark.usefixtures("prefect_api")]


@flow(name="two-apis-probe")
def probe() -> None:
    """Never executed: only its runs' states matter."""


@pytest.fixture(scope="module")
def second_api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    home = tmp_path_factory.mktemp("second-api")
    server = start_local_prefect_server(home, database_url=f"sqlite+aiosqlite:///{home / 'prefect.db'}")
    try:
        yield server.api_url
    finally:
        server.stop()


def create_run(state: Any) -> str:
    with get_client(sync_client=True) as client:
        return str(client.create_flow_run(probe, state=state).id)


def open_incident(store: Store, incident_id: str, flow_run_id: str) -> None:
    store.open_incident(incident_id=incident_id, runbook="elevated-error-rate", service=incident_id,
                        severity=Severity.SEV2, mode=Mode.AUTO, alert=Alert(name="a", service=incident_id))
    store.set_flow_run(incident_id, flow_run_id)


def test_each_reconciler_closes_only_its_own_api_s_dead_runs_and_names_the_owner_of_the_others(
    second_api: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = Store(f"sqlite:///{tmp_path / 'shared.db'}")
    store.migrate()
    home = current_api(refresh=True)
    home_dead, home_alive, home_unowned = (create_run(Crashed(message="x")), create_run(Running()),
                                           create_run(Crashed(message="y")))
    with temporary_settings(updates={PREFECT_API_URL: second_api}):
        away = current_api(refresh=True)
        away_dead, away_unowned = create_run(Crashed(message="z")), create_run(Crashed(message="w"))
    assert home.id and away.id and home.id != away.id, "each API has its own identity"

    for incident_id, run_id in (("inc-home-dead", home_dead), ("inc-home-alive", home_alive),
                                ("inc-home-unowned", home_unowned), ("inc-away-dead", away_dead),
                                ("inc-away-unowned", away_unowned)):
        open_incident(store, incident_id, run_id)
    for run_id in (home_dead, home_alive):
        store.record_run_owner(run_id, api_url=home.url, api_id=home.id)
    store.record_run_owner(away_dead, api_url=away.url, api_id=away.id)

    # The dry run of the CLI reports every open incident with what was found, and closes nothing.
    monkeypatch.setenv("REMEDIATE_DATABASE_URL", f"sqlite:///{tmp_path / 'shared.db'}")
    cli = CliRunner().invoke(app, ["reconcile", "--dry-run", "--json"])
    assert cli.exit_code == 0, cli.output
    listed = {r["incident_id"]: r for r in json.loads(cli.output)["incidents"]}
    assert {i: r["verdict"] for i, r in listed.items()} == {
        "inc-home-dead": "dead", "inc-home-alive": "alive", "inc-home-unowned": "dead", "inc-away-dead": "foreign",
        "inc-away-unowned": "unowned"}
    assert not any(r["closed"] for r in listed.values())
    assert all(store.get_incident(i).is_open for i in listed)  # type: ignore[union-attr]

    found = {r.incident_id: r for r in reconcile(store, here=home, include_alive=True)}
    assert {i: (r.verdict, r.closed) for i, r in found.items()} == {
        "inc-home-dead": (RunVerdict.DEAD, True), "inc-home-alive": (RunVerdict.ALIVE, False),
        "inc-home-unowned": (RunVerdict.DEAD, True), "inc-away-dead": (RunVerdict.FOREIGN, False),
        "inc-away-unowned": (RunVerdict.UNOWNED, False)}
    assert found["inc-away-dead"].detail == f"owned by {away.url}: not reconciled here"
    assert found["inc-away-unowned"].detail.startswith(f"its run is not on {home.url} and no owner is recorded")
    assert store.flow_runs([home_unowned])[home_unowned].api_id == home.id, "a run found at home is recorded ours"
    for incident_id in ("inc-away-dead", "inc-away-unowned", "inc-home-alive"):
        assert store.get_incident(incident_id).is_open, incident_id  # type: ignore[union-attr]

    with temporary_settings(updates={PREFECT_API_URL: second_api}):
        closed = {r.incident_id for r in reconcile(store, here=away) if r.closed}
    assert closed == {"inc-away-dead", "inc-away-unowned"}
    for incident_id in ("inc-home-dead", "inc-home-unowned", "inc-away-dead", "inc-away-unowned"):
        assert store.get_incident(incident_id).outcome is Outcome.ESCALATED  # type: ignore[union-attr]
    assert store.get_incident("inc-home-alive").is_open  # type: ignore[union-attr]
    store.dispose()


def test_the_api_identity_survives_a_change_of_url(second_api: str) -> None:
    with temporary_settings(updates={PREFECT_API_URL: second_api}):
        by_address = current_api(refresh=True)
    with temporary_settings(updates={PREFECT_API_URL: second_api.replace("127.0.0.1", "localhost")}):
        by_name = current_api(refresh=True)
    assert by_address.url != by_name.url and by_address.id == by_name.id
    assert by_name.owns(by_address.url, by_address.id) is True
    assert by_name.owns(by_address.url, "another-database") is False, "the identity decides over the URL"
    assert by_name.owns(None, None) is None
