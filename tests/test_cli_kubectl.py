"""The kubectl verbs of the real ``kjob`` command against the store: ``apply`` in one process,
``get``/``describe``/``logs``/``wait``/``patch``/``delete`` in others, as from several shells.

They need the store (``kjob.Job.get``, ``kjob._store``) and skip until it is there."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

import kjob

pytestmark = pytest.mark.skipif(
    not hasattr(kjob.Job, "get"), reason="needs the Job store (kjob.Job.get), which lands with issue 15"
)

KJOB = [sys.executable, "-m", "kjob.cli"]


@pytest.fixture
def home(tmp_path: Path) -> Iterator[Path]:
    """A store of this test's own (``KJOB_HOME``), emptied of Jobs at the end."""
    store = tmp_path / "home"
    yield store
    subprocess.run(
        [*KJOB, "delete", "jobs", "--all", "-A"],
        env={**os.environ, "KJOB_HOME": str(store)},
        capture_output=True,
        timeout=60,
    )


def kjob_cmd(
    home: Path, *args: str, stdin: str | None = None, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*KJOB, *args],
        env={**os.environ, "KJOB_HOME": str(home)},
        input=stdin,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def manifest(name: str, script: str, *, completions: int = 1, parallelism: int = 1, extra: str = "") -> str:
    return f"""\
apiVersion: batch/v1
kind: Job
metadata:
  name: {name}
  labels: {{team: data}}
spec:
  completions: {completions}
  parallelism: {parallelism}
  backoffLimit: 0{extra}
  template:
    spec:
      restartPolicy: Never
      containers:
      - name: main
        image: busybox
        command: [sh, -c, {json.dumps(script)}]
"""


def test_apply_then_every_verb_from_other_processes(home: Path) -> None:
    text = manifest("etl", "echo one; echo two")
    applied = kjob_cmd(home, "apply", "-f", "-", stdin=text)
    assert (applied.returncode, applied.stdout, applied.stderr) == (0, "job.batch/etl created\n", "")

    waited = kjob_cmd(home, "wait", "--for=condition=complete", "job/etl", "--timeout=60s")
    assert (waited.returncode, waited.stdout, waited.stderr) == (0, "job.batch/etl condition met\n", "")

    again = kjob_cmd(home, "apply", "-f", "-", stdin=text)
    assert (again.returncode, again.stdout) == (0, "job.batch/etl unchanged\n")

    got = kjob_cmd(home, "get", "jobs")
    assert got.returncode == 0
    assert got.stdout.splitlines()[0] == "NAME   STATUS     COMPLETIONS   DURATION   AGE"
    assert got.stdout.splitlines()[1].split()[:3] == ["etl", "Complete", "1/1"]
    assert kjob_cmd(home, "get", "jobs", "-l", "team=data", "-o", "name").stdout == "job.batch/etl\n"
    assert kjob_cmd(home, "get", "jobs", "-A").stdout.splitlines()[1].split()[:2] == ["default", "etl"]

    pods = kjob_cmd(home, "get", "pods", "-l", "job-name=etl", "-o", "name").stdout.split()
    assert len(pods) == 1 and pods[0].startswith("pod/etl-")

    logs = kjob_cmd(home, "logs", "job/etl")
    assert (logs.returncode, logs.stdout) == (0, "one\ntwo\n")
    prefixed = kjob_cmd(home, "logs", "job/etl", "--prefix", "--tail", "1")
    assert prefixed.stdout == f"[{pods[0]}/main] two\n"

    described = kjob_cmd(home, "describe", "job", "etl")
    assert described.returncode == 0
    assert described.stdout.startswith("Name:             etl\nNamespace:        default\n")
    assert "Pods Statuses:    0 Active (0 Ready) / 1 Succeeded / 0 Failed\n" in described.stdout
    assert "  Normal  Completed " in described.stdout

    as_json = json.loads(kjob_cmd(home, "get", "job", "etl", "-o", "json").stdout)
    assert (as_json["kind"], as_json["status"]["succeeded"]) == ("Job", 1)

    deleted = kjob_cmd(home, "delete", "job", "etl")
    assert (deleted.returncode, deleted.stdout) == (0, 'job.batch "etl" deleted\n')
    gone = kjob_cmd(home, "get", "job", "etl")
    assert (gone.returncode, gone.stdout, gone.stderr) == (
        1,
        "",
        'Error from server (NotFound): jobs.batch "etl" not found\n',
    )
    empty = kjob_cmd(home, "get", "jobs")
    assert (empty.returncode, empty.stdout, empty.stderr) == (
        0,
        "",
        "No resources found in default namespace.\n",
    )


def test_patch_and_immutable_fields(home: Path) -> None:
    text = manifest("held", "echo hi", completions=2, extra="\n  suspend: true")
    assert kjob_cmd(home, "apply", "-f", "-", stdin=text).stdout == "job.batch/held created\n"
    suspended = kjob_cmd(home, "get", "job", "held")
    assert suspended.stdout.splitlines()[1].split()[:3] == ["held", "Suspended", "0/2"]

    patched = kjob_cmd(home, "patch", "job", "held", "--type=merge", "-p", '{"spec":{"suspend":false}}')
    assert (patched.returncode, patched.stdout) == (0, "job.batch/held patched\n")
    assert kjob_cmd(home, "wait", "--for=condition=complete", "job/held").returncode == 0

    changed = text.replace("echo hi", "echo bye")
    refused = kjob_cmd(home, "apply", "-f", "-", stdin=changed)
    assert refused.returncode == 1
    assert refused.stderr.startswith('The Job "held" is invalid: spec.template: ')
    assert refused.stderr.rstrip().endswith("field is immutable")


def test_wait_timeout_and_failed(home: Path) -> None:
    kjob_cmd(home, "apply", "-f", "-", stdin=manifest("slow", "sleep 30"))
    timed_out = kjob_cmd(home, "wait", "--for=condition=complete", "job/slow", "--timeout=200ms")
    assert (timed_out.returncode, timed_out.stdout, timed_out.stderr) == (
        1,
        "",
        "error: timed out waiting for the condition on jobs/slow\n",
    )
    deleted = kjob_cmd(home, "delete", "job", "slow", "--grace-period", "0")
    assert deleted.stdout == 'job.batch "slow" deleted\n'
    # As kubectl: a Job already gone is skipped without a word.
    assert kjob_cmd(home, "wait", "--for=delete", "job/slow").stdout == ""

    kjob_cmd(home, "apply", "-f", "-", stdin=manifest("bad", "exit 3"))
    failed = kjob_cmd(home, "wait", "--for=condition=failed", "job/bad", "--timeout", "60s")
    assert (failed.returncode, failed.stdout) == (0, "job.batch/bad condition met\n")
    # The logs of a failed Job stay with it in the store.
    assert kjob_cmd(home, "get", "pods", "-l", "job-name=bad").stdout.splitlines()[1].split()[2] == "Error"


def test_not_found_and_invalid(home: Path, tmp_path: Path) -> None:
    for args in (
        ["describe", "job", "x"],
        ["logs", "job/x"],
        ["delete", "job", "x"],
        ["wait", "--for=delete", "job/x"],
    ):
        result = kjob_cmd(home, *args)
        if args[0] == "wait":
            assert result.returncode == 0
            continue
        assert (result.returncode, result.stderr) == (
            1,
            'Error from server (NotFound): jobs.batch "x" not found\n',
        )
    bad = tmp_path / "bad.yaml"
    bad.write_text(manifest("bad", "true").replace("backoffLimit: 0", "backoffLimit: -1"))
    invalid = kjob_cmd(home, "apply", "-f", str(bad))
    assert invalid.returncode == 2
    assert invalid.stderr.startswith(f'error: {bad}: The Job "bad" is invalid: spec.backoffLimit')
