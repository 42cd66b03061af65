"""`kjob create -f FILE`: as `kubectl create -f`, with `--dry-run -o yaml` printing the
document given (issue 13 §1: the round trip is lossless through the CLI too)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

# The manifest, from the round-trip corpus.
RT: dict[str, Any] = yaml.safe_load(
    (Path(__file__).parent / "fixtures" / "corpus" / "18-issue13-rt.yaml").read_text()
)
CONFIG_MAP = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "cfg"}, "data": {"A": "1"}}


def kjob(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "kjob.cli", *args], capture_output=True, text=True, timeout=60
    )


def test_create_dry_run_prints_the_document_given(tmp_path: Path) -> None:
    path = tmp_path / "rt.yaml"
    path.write_text(yaml.safe_dump_all([RT, CONFIG_MAP], sort_keys=False))
    out = kjob("create", "-f", str(path), "--dry-run=client", "-o", "yaml")
    assert out.returncode == 0, out.stderr
    assert yaml.safe_load(out.stdout) == RT
    # Key order is the user's.
    assert list(yaml.safe_load(out.stdout)["spec"]["template"]["spec"]) == list(
        RT["spec"]["template"]["spec"]
    )
    # What is not applied here is said, not lost.
    assert "spec.template.spec.volumes" in out.stderr


def test_create_dry_run_of_several_jobs_prints_a_list(tmp_path: Path) -> None:
    second = {**RT, "metadata": {"name": "rt2"}}
    path = tmp_path / "two.yaml"
    path.write_text(yaml.safe_dump_all([RT, second, CONFIG_MAP], sort_keys=False))
    out = kjob("create", "-f", str(path), "--dry-run", "-o", "json")
    assert out.returncode == 0, out.stderr
    listed = yaml.safe_load(out.stdout)
    assert listed["kind"] == "List"
    assert [item["metadata"]["name"] for item in listed["items"]] == ["rt", "rt2"]
    out = kjob("create", "-f", str(path), "--dry-run", "-o", "name")
    assert out.stdout.splitlines() == ["job.batch/rt", "job.batch/rt2"]


def test_create_without_dry_run_runs_the_job(tmp_path: Path) -> None:
    path = tmp_path / "rt.yaml"
    path.write_text(yaml.safe_dump_all([RT, CONFIG_MAP], sort_keys=False))
    out = kjob("create", "-f", str(path), "-o", "name")
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines() == ["job.batch/rt"]


def test_create_with_a_typo_exits_2_in_kubectls_words(tmp_path: Path) -> None:
    doc = yaml.safe_load(yaml.safe_dump(RT))
    doc["spec"]["backofLimit"] = 1
    path = tmp_path / "typo.yaml"
    path.write_text(yaml.safe_dump(doc))
    out = kjob("create", "-f", str(path), "--dry-run", "-o", "yaml")
    assert out.returncode == 2
    assert 'strict decoding error: unknown field "spec.backofLimit"' in out.stderr
    assert out.stdout == ""


def test_create_needs_a_file_or_a_kind() -> None:
    out = kjob("create")
    assert out.returncode == 2
    assert "kjob create: give -f FILE, or a KIND" in out.stderr
