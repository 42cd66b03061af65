"""The marker variables' names (``KJOB_JOB_UID``, ...) are written once, in the extension
(``src/runtime/job.rs``), and Python takes them from there (issue 14 §1)."""

from __future__ import annotations

import ast
from pathlib import Path

import kjob
from kjob import _kjob, _shepherd

# The package under test (python/kjob, or the installed wheel's copy of it).
PACKAGE = Path(kjob.__file__).parent

DOCUMENTED = {
    "JOB_UID_ENV": "KJOB_JOB_UID",
    "SESSION_ENV": "KJOB_SESSION",
    "OWNERS_ENV": "KJOB_OWNERS",
    "SHEPHERD_ENV": "KJOB_SHEPHERD_FOR",
}


def test_the_extension_exports_the_names_the_readme_documents() -> None:
    assert {name: getattr(_kjob, name) for name in DOCUMENTED} == DOCUMENTED


def test_the_shepherd_leaves_out_every_marker() -> None:
    assert set(_shepherd.MARKERS) == set(DOCUMENTED.values())


def _literal_names(path: Path) -> list[str]:
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Constant) and isinstance(node.value, (str, bytes)):
            text = node.value.decode() if isinstance(node.value, bytes) else node.value
            if text in DOCUMENTED.values():
                found.append(f"{path.name}: {node.value!r}")
    return found


def test_the_package_spells_no_marker_name_itself() -> None:
    found = [hit for path in sorted(PACKAGE.glob("*.py")) for hit in _literal_names(path)]
    # Only the worker, which starts without the extension (see the comment at its _MARKERS).
    assert found == ["_worker.py: b'KJOB_SESSION'", "_worker.py: b'KJOB_OWNERS'"]


def test_the_workers_copies_agree_with_the_extension() -> None:
    from kjob import _worker

    assert _worker._MARKERS == (_kjob.SESSION_ENV.encode(), _kjob.OWNERS_ENV.encode())


def test_the_check_finds_a_spelled_out_name(tmp_path: Path) -> None:
    source = tmp_path / "m.py"
    source.write_text('A = "KJOB_SESSION"\nB = b"KJOB_OWNERS"\nC = "KJOB_OTHER"\n')
    assert _literal_names(source) == ["m.py: 'KJOB_SESSION'", "m.py: b'KJOB_OWNERS'"]
