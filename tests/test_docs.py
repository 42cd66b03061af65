"""Every reference the code makes to docs/semantics.md resolves: each cited section (§5.3,
§8.A) is a heading there, and each upstream test id a Rust test cites (A23, J6, K17) is listed
in its §8 tables."""

from __future__ import annotations

import re
from pathlib import Path

from conftest import REPO, needs_source_tree

ROOT = REPO
SEMANTICS = ROOT / "docs" / "semantics.md"

_SECTION = re.compile(r"§(\d+(?:\.[0-9A-Z]+)?)")
_HEADING = re.compile(r"^#{2,3} (\d+(?:\.[0-9A-Z]+)?)\.? ", re.MULTILINE)
_TEST_ID = re.compile(r"\b([AJK]\d{1,2})\b")
_TABLE_ID = re.compile(r"^\| ([AJK]\d{1,2}) \|", re.MULTILINE)

pytestmark = needs_source_tree


def _sources(*folders: str, suffixes: tuple[str, ...] = (".rs", ".py", ".pyi", ".md")) -> list[Path]:
    found = [p for folder in folders for p in (ROOT / folder).rglob("*") if p.suffix in suffixes]
    return sorted(p for p in found if ".venv" not in p.parts and "target" not in p.parts)


def test_every_cited_section_is_a_heading() -> None:
    headings = set(_HEADING.findall(SEMANTICS.read_text(encoding="utf-8")))
    assert {"0.4", "1.7", "2.1", "5.4", "8.A", "8.J", "8.K"} <= headings
    files = [*_sources("src", "tests", "python", "docs"), ROOT / "README.md"]
    missing = {
        f"{path.relative_to(ROOT)}: §{section}"
        for path in files
        for section in _SECTION.findall(path.read_text(encoding="utf-8"))
        if section not in headings
    }
    assert sorted(missing) == []


def test_every_cited_upstream_case_is_listed() -> None:
    listed = set(_TABLE_ID.findall(SEMANTICS.read_text(encoding="utf-8")))
    cited = {
        (case, str(path.relative_to(ROOT)))
        for path in _sources("src/controller", "src/status", suffixes=(".rs",))
        for case in _TEST_ID.findall(path.read_text(encoding="utf-8"))
    }
    assert len(cited) > 60, "the controller's tests cite their upstream cases"
    assert sorted((case, path) for case, path in cited if case not in listed) == []
