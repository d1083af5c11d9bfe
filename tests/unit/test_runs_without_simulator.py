"""The remediation code runs where the simulator is not installed (a production install leaves sim/ out).

Each check runs in a fresh interpreter whose ``kamkmserve_sim`` is made unimportable before anything else loads
(``None`` in ``sys.modules``), so an import of the simulator anywhere, however indirect, fails there.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
BLOCK = "import sys; sys.modules['kamkmserve_sim'] = None\n"

IMPORT_EVERYTHING = BLOCK + """
import importlib, json, pkgutil, traceback
from typer.testing import CliRunner

failures, walked = {}, []
for top in ("remediation", "flows", "tasks", "deployments"):
    package = importlib.import_module(top)
    names = [top] + [info.name for info in pkgutil.walk_packages(package.__path__, top + ".",
                                                                  onerror=lambda name: None)]
    walked += names
    for name in names:
        try:
            importlib.import_module(name)
        except BaseException:
            failures[name] = traceback.format_exc(limit=3)

from remediation.cli import app
helps = {" ".join(args): CliRunner().invoke(app, args).exit_code for args in (["--help"], ["sim", "--help"])}
print(json.dumps({"walked": sorted(walked), "failures": failures, "helps": helps}))
"""


def modules_on_disk() -> set[str]:
    """Every module of the four packages, by its file (a folder without ``__init__.py`` is not a package)."""
    names = set()
    for top in ("remediation", "flows", "tasks", "deployments"):
        for path in (REPO / top).rglob("*.py"):
            parts = path.relative_to(REPO).with_suffix("").parts
            if all((REPO.joinpath(*parts[:i]) / "__init__.py").exists() for i in range(1, len(parts))):
                names.add(".".join(parts).removesuffix(".__init__"))
    return names


def run(code: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    # No REMEDIATE_* setting from the caller's shell, the checkout first on the path, Prefect's home out of the way.
    env = {k: v for k, v in os.environ.items() if not k.startswith("REMEDIATE_")}
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), env.get("PYTHONPATH", "")])
    env["PREFECT_HOME"] = str(cwd / "prefect-home")
    return subprocess.run([sys.executable, "-c", code], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=300, check=False)


def test_every_module_imports_and_the_cli_answers_help_without_the_simulator(tmp_path: Path) -> None:
    done = run(IMPORT_EVERYTHING, tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["failures"] == {}, "\n".join(f"{k}:\n{v}" for k, v in result["failures"].items())
    assert set(result["walked"]) == modules_on_disk()  # every module really was imported, none skipped
    assert result["helps"] == {"--help": 0, "sim --help": 0}


@pytest.mark.parametrize("command", ["demo", "sim"])
def test_a_command_that_needs_the_simulator_says_in_one_line_how_to_install_it(tmp_path: Path,
                                                                                command: str) -> None:
    done = run(BLOCK + f"from remediation.cli import app\napp([{command!r}], prog_name='remediate')\n", tmp_path)
    assert done.returncode == 1, done.stderr[-3000:]
    assert "Traceback" not in done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith(f"{command}: the kamkmserve simulator is not installed")
    assert "pip install -e ./sim" in lines[0] and "make demo" in lines[0]
