"""The distributions `make wheel` builds (issue 17 §5): one abi3 manylinux wheel that installs
without a Rust toolchain, and an sdist that can build it again.

The artifacts are read from the folder ``KJOB_DIST`` names (.ci/run sets it to dist/ for its
run of the suite against the installed wheel); without it these tests skip."""

from __future__ import annotations

import os
import re
import tarfile
import zipfile
from pathlib import Path

import pytest
from packaging.tags import Tag
from packaging.utils import parse_sdist_filename, parse_wheel_filename

import kjob

DIST = Path(os.environ["KJOB_DIST"]) if os.environ.get("KJOB_DIST") else None
pytestmark = pytest.mark.skipif(DIST is None, reason="no built distributions: set KJOB_DIST to dist/")

# The oldest glibc manylinux2014 (= manylinux_2_17) allows; a symbol version above it in the
# extension would make the wheel uninstallable on the systems its tag names.
MANYLINUX_GLIBC = (2, 17)


def only(pattern: str) -> Path:
    assert DIST is not None
    found = sorted(DIST.glob(pattern))
    assert len(found) == 1, f"{DIST}: expected one {pattern}, found {[p.name for p in found]}"
    return found[0]


def wheel_tags(filename: str) -> set[Tag]:
    return set(parse_wheel_filename(filename)[3])


def test_the_wheel_is_abi3_for_cpython_3_9_and_manylinux2014() -> None:
    wheel = only("*.whl")
    name, version, _build, tags = parse_wheel_filename(wheel.name)
    assert (name, str(version)) == ("kjob", "0.1.0")
    assert {(t.interpreter, t.abi) for t in tags} == {("cp39", "abi3")}
    assert {t.platform for t in tags} == {"manylinux_2_17_x86_64", "manylinux2014_x86_64"}


def test_the_filename_check_tells_abi3_manylinux_from_the_rest() -> None:
    """The checks above can fail: a per-version or a plain linux wheel is told apart."""
    assert wheel_tags("kjob-0.1.0-cp39-abi3-manylinux_2_17_x86_64.manylinux2014_x86_64.whl") == {
        Tag("cp39", "abi3", "manylinux_2_17_x86_64"),
        Tag("cp39", "abi3", "manylinux2014_x86_64"),
    }
    assert wheel_tags("kjob-0.1.0-cp311-cp311-linux_x86_64.whl") == {Tag("cp311", "cp311", "linux_x86_64")}


def glibc_versions(binary: bytes) -> set[tuple[int, int]]:
    """The ``GLIBC_2.x`` symbol versions a shared object names (its version-needs strings)."""
    return {(2, int(minor)) for minor in re.findall(rb"\bGLIBC_2\.(\d+)", binary)}


def test_the_extension_needs_no_glibc_newer_than_its_tag() -> None:
    with zipfile.ZipFile(only("*.whl")) as wheel:
        names = wheel.namelist()
        assert "kjob/_kjob.abi3.so" in names
        needed = glibc_versions(wheel.read("kjob/_kjob.abi3.so"))
    assert needed, "the extension links glibc"
    assert max(needed) <= MANYLINUX_GLIBC
    assert glibc_versions(b"\0GLIBC_2.34\0GLIBC_2.2.5\0") == {(2, 34), (2, 2)}


def test_the_wheel_holds_the_package_its_stubs_and_the_cli() -> None:
    with zipfile.ZipFile(only("*.whl")) as wheel:
        names = set(wheel.namelist())
        entry_points = wheel.read("kjob-0.1.0.dist-info/entry_points.txt").decode()
    package = {
        p.relative_to(Path(kjob.__file__).parent.parent).as_posix()
        for p in Path(kjob.__file__).parent.glob("*.py")
    }
    assert package <= names
    assert {"kjob/_kjob.pyi", "kjob/py.typed"} <= names
    # The CLI, and the pytest plugin (README "pytest plugin") that pytest finds by its entry point.
    assert entry_points == "[console_scripts]\nkjob=kjob.cli:main\n[pytest11]\nkjob=kjob.pytest_plugin\n"
    assert not [n for n in names if n.startswith(("tests/", "src/", "target/"))]


def test_the_sdist_holds_what_builds_the_wheel() -> None:
    sdist = only("*.tar.gz")
    name, version = parse_sdist_filename(sdist.name)
    assert (name, str(version)) == ("kjob", "0.1.0")
    with tarfile.open(sdist) as archive:
        names = {n.split("/", 1)[1] for n in archive.getnames() if "/" in n}
    assert {"Cargo.toml", "Cargo.lock", "pyproject.toml", "README.md", "LICENSE"} <= names
    assert {"src/lib.rs", "python/kjob/__init__.py", "python/kjob/_kjob.pyi"} <= names
    assert not [n for n in names if n.startswith((".venv/", "target/", "dist/"))]
