"""``kjob run -f`` with several Jobs, folders and standard input (issue 13 §3), as
``kubectl apply -f`` reads them: real files, real ``kjob`` processes."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import yaml

KJOB = [sys.executable, "-m", "kjob.cli"]


def job_doc(name: str, command: str, spec: str = "") -> str:
    return (
        f"apiVersion: batch/v1\nkind: Job\nmetadata:\n  name: {name}\nspec:\n{spec}"
        "  template:\n    spec:\n      restartPolicy: Never\n      containers:\n"
        f"      - name: main\n        command: ['sh', '-c', {command!r}]\n"
    )


SERVICE = "apiVersion: v1\nkind: Service\nmetadata:\n  name: web\nspec:\n  ports: [{port: 80}]\n"


def kjob(*args: str, stdin: str | None = None, timeout: float = 30) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*KJOB, *args], input=stdin, capture_output=True, text=True, timeout=timeout)


def lines_of(text: str, prefix: str) -> list[str]:
    return [line[len(prefix) :] for line in text.splitlines() if line.startswith(prefix)]


def test_two_jobs_in_one_file_run_concurrently_with_prefixed_output(tmp_path: Path) -> None:
    # Each Job waits for a file only the other creates: they finish only if both run at once.
    a, b = tmp_path / "a", tmp_path / "b"
    wait_for = "i=0; while [ ! -e {0} ] && [ $i -lt 100 ]; do sleep 0.05; i=$((i+1)); done; [ -e {0} ]"
    path = tmp_path / "jobs.yaml"
    path.write_text(
        "---\n".join(
            [
                job_doc("one", f"touch {a}; {wait_for.format(b)} && echo one-done"),
                job_doc("two", f"touch {b}; {wait_for.format(a)} && echo two-done"),
            ]
        )
    )
    out = kjob("run", "-f", str(path), "--logs")
    assert out.returncode == 0, out.stderr
    one, two = lines_of(out.stdout, "[job/one] "), lines_of(out.stdout, "[job/two] ")
    assert one[0] == "job.batch/one created"
    assert two[0] == "job.batch/two created"
    assert any(line.endswith("] one-done") for line in one), one
    assert any(line.endswith("] two-done") for line in two), two
    assert one[-1] == (
        "job.batch/one: condition Complete=True reason=CompletionsReached: "
        "Reached expected number of succeeded pods"
    )
    # Every line belongs to one of them.
    assert len(one) + len(two) == len(out.stdout.splitlines())


def test_one_failing_job_makes_the_exit_status_non_zero(tmp_path: Path) -> None:
    path = tmp_path / "jobs.yaml"
    path.write_text(
        "---\n".join(
            [job_doc("fine", "true"), job_doc("broken", "echo oops; exit 3", spec="  backoffLimit: 0\n")]
        )
    )
    out = kjob("run", "-f", str(path))
    assert out.returncode == 1, out.stderr
    assert "[job/fine] job.batch/fine: condition Complete=True" in out.stdout
    assert "[job/broken] job.batch/broken: condition Failed=True reason=BackoffLimitExceeded" in out.stdout
    errors = lines_of(out.stderr, "[job/broken] ")
    assert errors[0] == (
        "error: job.batch/broken failed: BackoffLimitExceeded: Job has reached the specified backoff limit"
    )
    assert not lines_of(out.stderr, "[job/fine] ")


def test_a_folder_runs_every_manifest_in_name_order_and_skips_other_files(tmp_path: Path) -> None:
    folder = tmp_path / "manifests"
    folder.mkdir()
    (folder / "b.yml").write_text(job_doc("bee", "echo b"))
    (folder / "a.yaml").write_text(job_doc("ay", "echo a"))
    (folder / "c.json").write_text(json.dumps(yaml.safe_load(job_doc("cee", "echo c"))))
    (folder / "README.md").write_text("not: a manifest: [")
    out = kjob("run", "-f", str(folder), "-o", "name")
    assert out.returncode == 0, out.stderr
    assert out.stdout == "job.batch/ay\njob.batch/bee\njob.batch/cee\n"
    out = kjob("validate", "-f", str(folder))
    assert out.returncode == 0, out.stderr
    assert out.stdout == (
        f"job.batch/ay valid ({folder / 'a.yaml'})\n"
        f"job.batch/bee valid ({folder / 'b.yml'})\n"
        f"job.batch/cee valid ({folder / 'c.json'})\n"
    )


def test_stdin_and_files_combine_and_print_a_list(tmp_path: Path) -> None:
    path = tmp_path / "one.yaml"
    path.write_text(job_doc("from-file", "true"))
    out = kjob("run", "-f", str(path), "-f", "-", "-o", "yaml", stdin=job_doc("from-stdin", "true"))
    assert out.returncode == 0, out.stderr
    listed = yaml.safe_load(out.stdout)
    assert listed["apiVersion"] == "v1" and listed["kind"] == "List"
    assert listed["metadata"] == {"resourceVersion": ""}
    assert [(i["metadata"]["name"], i["status"]["succeeded"]) for i in listed["items"]] == [
        ("from-file", 1),
        ("from-stdin", 1),
    ]
    out = kjob("run", "-f", str(path), "-f", "-", "-o", "json", stdin=job_doc("from-stdin", "true"))
    assert out.returncode == 0, out.stderr
    assert [i["metadata"]["name"] for i in json.loads(out.stdout)["items"]] == ["from-file", "from-stdin"]


def test_other_kinds_are_skipped_with_a_warning(tmp_path: Path) -> None:
    path = tmp_path / "app.yaml"
    path.write_text("---\n".join([SERVICE, job_doc("only", "true")]))
    for command in ("validate", "run"):
        out = kjob(command, "-f", str(path))
        assert out.returncode == 0, out.stderr
        assert out.stderr.splitlines()[0] == (
            f'Warning: {path}: kjob skips kind Service "web": it runs Jobs, and reads the '
            "ConfigMaps and Secrets beside them for their env"
        )


def test_a_file_with_only_other_kinds_is_invalid(tmp_path: Path) -> None:
    path = tmp_path / "svc.yaml"
    path.write_text(SERVICE)
    out = kjob("run", "-f", str(path))
    assert out.returncode == 2
    assert out.stderr == f"error: {path}: no document of kind Job (found kind: Service)\n"


def test_an_invalid_job_among_several_runs_none(tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    path = tmp_path / "jobs.yaml"
    path.write_text("---\n".join([job_doc("good", f"touch {marker}"), job_doc("Bad_Name", "true")]))
    out = kjob("run", "-f", str(path))
    assert out.returncode == 2
    assert out.stderr.startswith(
        f'error: {path}: The Job "Bad_Name" is invalid: metadata.name: Invalid value'
    )
    time.sleep(0.2)
    assert not marker.exists()
