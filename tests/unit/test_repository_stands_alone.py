"""A clone of this repository works with nothing beside it: no path leads outside it, every captured fixture the
tests name is in tests/fixtures, and every reference section the code cites is in docs/reference."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
FIXTURES = REPO / "tests" / "fixtures"
REFERENCE = REPO / "docs" / "reference"
CODE_DIRS = ("remediation", "flows", "tasks", "deployments", "tests", "bench")
TEXT_SUFFIXES = {".py", ".md", ".toml", ".yaml", ".yml", ".txt", ".cfg", ".ini", ".sh", ""}

# The folder the project was built beside (its fixtures, references and design brief) and the builder's checkout.
OUTSIDE = re.compile(r"\.\.[/\\]shared\b|\bshared[/\\](?:fixtures|reference|hooks)\b|\bDESIGN\.md\b"
                     r"""|["']shared["']\s*/|/\s*["']shared["']|/work/(?:main|shared)\b""")
FIXTURE_NAME = re.compile(r"""["']((?:default|avreject|ratelimited)-[\w*.-]+\.http|logs-[\w*]+\.std(?:out|err)"""
                          r"""|\d\d-[\w-]+\.json|alertmanager\.yml|request-headers\.txt)["']""")
CITED_PATH = re.compile(r"docs/reference/([\w-]+\.md)((?:\s*(?:,|/|-|and)?\s*§\d+(?:\.\d+)?(?:-\d+(?:\.\d+)?)?)*)")
CITED_LINK = re.compile(r"\[([\w-]+\.md)((?:\s*§[\d.]+(?:-\d+)?)+)\]\((?:\.\./)*reference/\1\)")
# A citation that names no document (the word "reference", then a section number): which file is meant?
BARE_CITATION = re.compile(r"\breference(?: kamkmserve)?\s+§\d", re.IGNORECASE)
SECTION = re.compile(r"§(\d+(?:\.\d+)?)(?:-(\d+(?:\.\d+)?))?")


def repo_texts(*, verbatim: bool = False) -> list[Path]:
    """The project's own text files; the byte-identical copies (fixtures, reference documents) only on request."""
    roots = [REPO / d for d in (*CODE_DIRS, "docs", ".ci")] + [REPO / n for n in (
        "README.md", "Makefile", "prefect.yaml", "pyproject.toml")]
    files: list[Path] = []
    for root in roots:
        candidates = [root] if root.is_file() else sorted(p for p in root.rglob("*") if p.is_file())
        for path in candidates:
            if "__pycache__" in path.parts or path.suffix not in TEXT_SUFFIXES:
                continue
            copy = path.is_relative_to(FIXTURES) or (path.parent == REFERENCE and path.name != "README.md")
            if copy == verbatim or (verbatim and path.is_relative_to(FIXTURES)):
                files.append(path)
    return files


def test_no_file_of_the_project_reads_or_cites_a_path_outside_the_repository() -> None:
    """Code, tests, benchmarks and docs name only paths inside the clone (the fixtures and reference documents
    were copied in); a hit names the file and line."""
    hits = [f"{path.relative_to(REPO)}:{number}: {line.strip()}"
            for path in repo_texts()
            for number, line in enumerate(path.read_text(encoding="utf-8", errors="replace").splitlines(), 1)
            if OUTSIDE.search(line)]
    assert hits == []


def test_the_fixture_folders_the_test_kits_read_are_inside_the_repository() -> None:
    """Each kit's FIXTURES constant points into tests/fixtures and holds the captures."""
    from tests.intake import intakekit
    from tests.sim import simkit
    from tests.unit import test_metrics

    for folder in (simkit.FIXTURES, intakekit.FIXTURES, test_metrics.FIXTURES):
        assert folder.is_relative_to(FIXTURES) and folder.is_dir(), folder
    assert len(list((FIXTURES / "kamkmserve").glob("*.http"))) == 47
    assert len(list((FIXTURES / "alertmanager").glob("*.json"))) == 3


def test_every_fixture_a_test_names_exists_under_tests_fixtures() -> None:
    """Every captured file named in a test or benchmark (or a glob of them) is in tests/fixtures."""
    named = {match.group(1) for path in repo_texts() if path.suffix == ".py" and path.parts[len(REPO.parts)] in (
        "tests", "bench") for match in FIXTURE_NAME.finditer(path.read_text(encoding="utf-8"))}
    assert len(named) > 40  # the scan found the suite's fixtures (it cannot pass by finding none)
    folders = [FIXTURES / "kamkmserve", FIXTURES / "alertmanager"]
    missing = sorted(name for name in named if not any(any(folder.glob(name)) for folder in folders))
    assert missing == []


def cited_sections() -> list[tuple[str, str, str]]:
    """(where, document, section) of each citation: the document's repository path and sections, or a markdown
    link to the document whose text names its sections."""
    cited: list[tuple[str, str, str]] = []
    for path in repo_texts():
        text = path.read_text(encoding="utf-8", errors="replace")
        for match in (*CITED_PATH.finditer(text), *CITED_LINK.finditer(text)):
            where = f"{path.relative_to(REPO)}:{text.count(chr(10), 0, match.start()) + 1}"
            sections = [s for m in SECTION.finditer(match.group(2)) for s in m.groups() if s] or [""]
            cited += [(where, match.group(1), section) for section in sections]
    return cited


def headings(document: Path) -> set[str]:
    return set(re.findall(r"^#{2,4} (\d+(?:\.\d+)?)\.?\s", document.read_text(encoding="utf-8"), re.M))


def test_every_cited_reference_section_exists_in_docs_reference() -> None:
    """The code's citations name a document in docs/reference and a section that document has."""
    cited = cited_sections()
    assert len(cited) > 100  # every runbook, adapter and the simulator cite the reference
    documents = {path.name: headings(path) for path in REFERENCE.glob("*.md") if path.name != "README.md"}
    assert set(documents) == {"kamkmserve.md", "integrations.md", "prefect.md", "prefect-fast-start.md"}
    broken = [f"{where}: {doc} §{section}" for where, doc, section in cited
              if doc not in documents or (section and section not in documents[doc])]
    assert broken == []


def test_no_citation_leaves_out_which_document_it_means() -> None:
    """Every "§N" a comment cites names its file in docs/reference, never a bare "reference §N"."""
    bare = [f"{path.relative_to(REPO)}:{number}" for path in repo_texts()
            for number, line in enumerate(path.read_text(encoding="utf-8", errors="replace").splitlines(), 1)
            if BARE_CITATION.search(line)]
    assert bare == []


@pytest.mark.parametrize("document", ["kamkmserve.md", "integrations.md", "prefect.md", "prefect-fast-start.md"])
def test_each_reference_document_is_listed_in_the_reference_readme(document: str) -> None:
    """The reference folder's README says where the documents come from and links each one."""
    assert f"]({document})" in (REFERENCE / "README.md").read_text(encoding="utf-8")
