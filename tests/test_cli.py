"""The ``kjob`` command line: output and exit codes, through a real subprocess."""

from __future__ import annotations

import json
import os
import re
import select
import signal
import subprocess
import sys
import time
import tty
import uuid
from pathlib import Path
from typing import Any

import kubernetes_validate  # type: ignore[import-untyped]
import pytest
import yaml

from conftest import REPO, needs_source_tree

EXAMPLES = REPO / "examples"
KJOB = [sys.executable, "-m", "kjob.cli"]
# As from a terminal: SIGINT at its default even when this runner was started in the background
# (shells start background jobs with SIGINT ignored, and Python keeps it so).
KJOB_INTERACTIVE = [
    sys.executable,
    "-c",
    "import signal, sys; signal.signal(signal.SIGINT, signal.default_int_handler); "
    "from kjob.cli import main; sys.exit(main(sys.argv[1:]))",
]
# Pod names end in five characters of Kubernetes' alphabet for generated names.
SUFFIX = "[bcdfghjklmnpqrstvwxz2456789]{5}"
RFC3339 = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ")
IGNORED_RESOURCES = (
    "kjob ignores fields it cannot honour on this machine: spec.template.spec.containers[0].resources"
)
CONFIG_MAP = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: settings\ndata:\n  mode: fast\n"


def write_job(tmp_path: Path, command: str, extra: str = "") -> Path:
    path = tmp_path / "job.yaml"
    path.write_text(
        "apiVersion: batch/v1\nkind: Job\nmetadata:\n  name: cli\nspec:\n"
        f"{extra}  template:\n    spec:\n      restartPolicy: Never\n      containers:\n"
        f"      - name: cli\n        command: ['sh', '-c', {command!r}]\n"
    )
    return path


def job_doc(
    name: str,
    command: str,
    *,
    spec: str = "",
    container: str = "",
    api_version: str = "batch/v1",
    annotations: str = "",
) -> str:
    """One Job document; `spec` and `container` are extra lines indented for their place."""
    meta = f"  annotations:\n{annotations}" if annotations else ""
    return (
        f"apiVersion: {api_version}\nkind: Job\nmetadata:\n  name: {name}\n{meta}spec:\n{spec}"
        "  template:\n    spec:\n      restartPolicy: Never\n      containers:\n"
        f"      - name: {name}\n        command: ['sh', '-c', {command!r}]\n{container}"
    )


def write(tmp_path: Path, *docs: str) -> Path:
    path = tmp_path / "manifest.yaml"
    path.write_text("---\n".join(docs))
    return path


def kjob(*args: str, stdin: str | None = None, timeout: float = 20) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*KJOB, *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=None if stdin is not None else subprocess.DEVNULL,
    )


def pids_matching(pattern: str) -> list[str]:
    ps = subprocess.run(["pgrep", "-f", pattern], capture_output=True, text=True, timeout=10)
    return ps.stdout.split()


def run_on_a_tty(args: list[str], timeout: float = 20) -> tuple[int, str]:
    """Runs `args` with stdout and stderr on a pseudo-terminal; returns the exit status and
    everything written, byte for byte (raw mode: no newline translation)."""
    master, slave = os.openpty()
    tty.setraw(slave)
    try:
        proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=slave, stderr=slave)
    finally:
        os.close(slave)
    chunks: list[bytes] = []
    deadline = time.monotonic() + timeout
    try:
        while True:
            left = deadline - time.monotonic()
            assert left > 0, f"still writing after {timeout} s: {b''.join(chunks)!r}"
            ready, _, _ = select.select([master], [], [], left)
            if not ready:
                continue
            try:
                data = os.read(master, 4096)
            except OSError:  # EIO: the last writer closed the terminal
                break
            if not data:
                break
            chunks.append(data)
        return proc.wait(timeout=max(0.1, deadline - time.monotonic())), b"".join(chunks).decode()
    finally:
        proc.kill()
        proc.wait()
        os.close(master)


def keys_of(value: Any) -> list[str]:
    """Every mapping key of a document, at any depth."""
    if isinstance(value, dict):
        return [k for k, v in value.items() for k in [k, *keys_of(v)]]
    if isinstance(value, list):
        return [k for v in value for k in keys_of(v)]
    return []


# --- kjob run ------------------------------------------------------------------------------


@needs_source_tree
def test_run_pi_example_exits_0() -> None:
    out = subprocess.run(
        [*KJOB, "run", "-f", str(EXAMPLES / "pi.yaml"), "--logs"], capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0, out.stderr
    assert "job.batch/pi created" in out.stdout
    assert "condition Complete=True reason=CompletionsReached" in out.stdout
    assert "] 3.14159265358979" in out.stdout


def test_failed_job_exits_1(tmp_path: Path) -> None:
    path = write_job(tmp_path, "exit 4", extra="  backoffLimit: 0\n")
    # A failed Job's log folder is kept for the user: here, the test's own folder.
    out = subprocess.run(
        [*KJOB, "run", "-f", str(path), "--log-dir", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 1
    assert "condition Failed=True reason=BackoffLimitExceeded" in out.stdout


def test_invalid_manifest_exits_2_with_the_field_error(tmp_path: Path) -> None:
    path = write_job(tmp_path, "true", extra="  completions: -1\n")
    out = subprocess.run([*KJOB, "run", "-f", str(path)], capture_output=True, text=True, timeout=60)
    assert out.returncode == 2
    assert out.stdout == ""
    assert out.stderr == (
        f'error: {path}: The Job "cli" is invalid: spec.completions: Invalid value: -1: '
        "must be greater than or equal to 0\n"
    )


def test_several_field_errors_are_listed_one_bullet_each(tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    path = write_job(tmp_path, f"touch {marker}", extra="  completions: -1\n  parallelism: -2\n")
    out = kjob("run", "-f", str(path))
    assert out.returncode == 2
    assert out.stdout == ""
    # As kubectl prints an invalid object (MultilineError): the head line ends in ": ".
    assert out.stderr == (
        f'error: {path}: The Job "cli" is invalid: \n'
        "* spec.parallelism: Invalid value: -2: must be greater than or equal to 0\n"
        "* spec.completions: Invalid value: -1: must be greater than or equal to 0\n"
    )
    assert not marker.exists()


def check_finished_job(doc: Any, name: str, completions: int) -> None:
    """`kubectl get job -o json|yaml` of a Complete Job."""
    assert doc["apiVersion"] == "batch/v1"
    assert doc["kind"] == "Job"
    assert doc["metadata"]["name"] == name
    uid = doc["metadata"]["uid"]
    assert str(uuid.UUID(uid)) == uid
    assert doc["spec"]["selector"] == {"matchLabels": {"batch.kubernetes.io/controller-uid": uid}}
    assert doc["spec"]["completions"] == completions
    assert doc["spec"]["backoffLimit"] == 6  # defaulted, as the API server does
    assert doc["spec"]["template"]["spec"]["containers"][0]["command"] == ["sh", "-c", "echo hi"]
    status = doc["status"]
    assert status["succeeded"] == completions
    assert "failed" not in status and "active" not in status  # zero counts are left out
    complete = [c for c in status["conditions"] if c["type"] == "Complete"]
    assert len(complete) == 1
    assert complete[0]["status"] == "True"
    assert complete[0]["reason"] == "CompletionsReached"
    assert RFC3339.fullmatch(status["startTime"])
    assert RFC3339.fullmatch(status["completionTime"])
    assert RFC3339.fullmatch(complete[0]["lastTransitionTime"])
    assert [k for k in keys_of(doc) if "_" in k] == []  # camelCase, as the API serializes


@pytest.mark.parametrize("output", ["json", "yaml"])
def test_run_output_json_or_yaml_prints_only_the_finished_job(tmp_path: Path, output: str) -> None:
    path = write(tmp_path, job_doc("out", "echo hi", spec="  completions: 2\n  parallelism: 2\n"))
    out = kjob("run", "-f", str(path), "-o", output)
    assert out.returncode == 0, out.stderr
    doc = json.loads(out.stdout) if output == "json" else yaml.safe_load(out.stdout)
    check_finished_job(doc, "out", 2)
    # The progress went to stderr, so that stdout can be piped to a parser.
    assert out.stderr.startswith("job.batch/out created\n")
    assert "job.batch/out: active=0 succeeded=2 failed=0\n" in out.stderr
    assert "job.batch/out: condition Complete=True reason=CompletionsReached" in out.stderr


def test_run_output_json_of_a_failed_job_exits_1(tmp_path: Path) -> None:
    # kjob's own annotation shortens the replacement delay (10 s by default).
    path = write(
        tmp_path,
        job_doc(
            "bad",
            "exit 3",
            spec="  backoffLimit: 1\n",
            annotations="    kjob.io/backoff-initial-seconds: '0.01'\n",
        ),
    )
    start = time.monotonic()
    out = kjob("run", "-f", str(path), "-o", "json", "--log-dir", str(tmp_path))
    assert time.monotonic() - start < 5
    assert out.returncode == 1, out.stderr
    doc = json.loads(out.stdout)
    assert doc["status"]["failed"] == 2
    failed = [c for c in doc["status"]["conditions"] if c["type"] == "Failed"]
    assert [(c["status"], c["reason"]) for c in failed] == [("True", "BackoffLimitExceeded")]
    assert doc["metadata"]["annotations"] == {"kjob.io/backoff-initial-seconds": "0.01"}


def test_run_output_wide_prints_a_kubectl_table(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        job_doc(
            "wide",
            "echo hi",
            spec="  completions: 2\n  parallelism: 2\n",
            container="        image: busybox:1.36\n",
        ),
    )
    out = kjob("run", "-f", str(path), "-o", "wide")
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines[0] == "job.batch/wide created"
    header, row = lines[-2:]
    assert header.split() == [
        "NAME",
        "STATUS",
        "COMPLETIONS",
        "DURATION",
        "AGE",
        "CONTAINERS",
        "IMAGES",
        "SELECTOR",
    ]
    cells = row.split()
    assert cells[:3] == ["wide", "Complete", "2/2"]
    assert re.fullmatch(r"\d+s", cells[3]) and re.fullmatch(r"\d+s", cells[4])
    assert cells[5:7] == ["wide", "busybox:1.36"]
    assert re.fullmatch(r"batch\.kubernetes\.io/controller-uid=[0-9a-f-]{36}", cells[7])
    # Columns are aligned, three spaces apart at least.
    position = 0
    for title, cell in zip(header.split(), cells):
        position = row.index(cell, position)
        assert header.index(title) == position, (title, cell)
        position += len(cell)
    assert "   STATUS   " in header


def test_run_output_name(tmp_path: Path) -> None:
    path = write(tmp_path, job_doc("named", "echo hi"))
    out = kjob("run", "-f", str(path), "-o", "name")
    assert out.returncode == 0, out.stderr
    assert out.stdout == "job.batch/named\n"
    assert "job.batch/named created\n" in out.stderr


def test_run_reads_the_manifest_from_stdin() -> None:
    out = kjob("run", "-f", "-", "-o", "name", stdin=job_doc("piped", "echo hi"))
    assert out.returncode == 0, out.stderr
    assert out.stdout == "job.batch/piped\n"


def test_run_timeout_deletes_the_job_and_exits_1(tmp_path: Path) -> None:
    started = tmp_path / "started"
    # A unique duration: pgrep finds both the shell and its `sleep` child by it.
    marker = f"sleep 30.{uuid.uuid4().int % 10**9:09d}"
    path = write(tmp_path, job_doc("slow", f"touch {started}; {marker}"))
    begin = time.monotonic()
    out = kjob("run", "-f", str(path), "--timeout", "0.3")
    elapsed = time.monotonic() - begin
    assert out.returncode == 1
    assert out.stderr == "error: job.batch/slow did not finish within 0.3 s\n"
    assert "job.batch/slow: active=1 succeeded=0 failed=0\n" in out.stdout
    assert "condition" not in out.stdout
    assert started.exists()  # the pod did run
    assert 0.3 <= elapsed < 5
    # The pod's shell and its `sleep` went with the Job, before kjob exited.
    assert pids_matching(re.escape(marker)) == []


def test_run_rejects_a_command_after_double_dash(tmp_path: Path) -> None:
    path = write(tmp_path, job_doc("cli", "echo hi"))
    out = kjob("run", "-f", str(path), "--", "echo", "hi")
    assert out.returncode == 2
    assert out.stdout == ""
    assert out.stderr.endswith("kjob: error: only `kjob create job` takes a command after --\n")


def test_ctrl_c_deletes_the_job_and_exits_130(tmp_path: Path) -> None:
    marker = tmp_path / "started"
    path = write_job(tmp_path, f"touch {marker}; sleep 300")
    proc = subprocess.Popen(
        [*KJOB_INTERACTIVE, "run", "-f", str(path)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        deadline = time.monotonic() + 30
        while not marker.exists() and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.01)
        assert marker.exists()
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == 130
    assert "interrupted: deleting job.batch/cli" in err
    # The pod's `sleep 300` is gone with the Job.
    ps = subprocess.run(["pgrep", "-f", f"touch {marker}"], capture_output=True, text=True)
    assert ps.stdout == ""


# --- kjob validate -------------------------------------------------------------------------


def test_validate_checks_every_job_and_skips_other_kinds(tmp_path: Path) -> None:
    ran = tmp_path / "ran"
    path = write(
        tmp_path,
        CONFIG_MAP,
        job_doc("one", f"touch {ran}"),
        job_doc("two", f"touch {ran}", spec="  completions: 3\n"),
    )
    out = kjob("validate", "-f", str(path))
    assert out.returncode == 0, out.stderr
    assert out.stdout == f"job.batch/one valid ({path})\njob.batch/two valid ({path})\n"
    assert out.stderr == ""
    assert not ran.exists()  # validated, not run


def test_validate_invalid_job_exits_2_with_the_field_error(tmp_path: Path) -> None:
    path = write(
        tmp_path, CONFIG_MAP, job_doc("one", "true"), job_doc("two", "true", spec="  backoffLimit: -1\n")
    )
    out = kjob("validate", "-f", str(path))
    assert out.returncode == 2
    assert out.stdout == ""
    assert out.stderr == (
        f'error: {path}: The Job "two" is invalid: spec.backoffLimit: Invalid value: -1: '
        "must be greater than or equal to 0\n"
    )


def test_validate_warns_of_ignored_fields_and_strict_refuses_them(tmp_path: Path) -> None:
    path = write(
        tmp_path, job_doc("one", "true", container="        resources:\n          limits: {cpu: '1'}\n")
    )
    out = kjob("validate", "-f", str(path))
    assert out.returncode == 0, out.stderr
    assert out.stdout == f"job.batch/one valid ({path})\n"
    assert out.stderr == f"Warning: {path}: {IGNORED_RESOURCES}\n"

    strict = kjob("validate", "--strict", "-f", str(path))
    assert strict.returncode == 2
    assert strict.stdout == ""
    assert strict.stderr == (
        f'error: {path}: The Job "one" is invalid: fields kjob cannot honour on this machine: '
        "spec.template.spec.containers[0].resources\n"
    )


def test_validate_refuses_another_api_version(tmp_path: Path) -> None:
    path = write(tmp_path, job_doc("one", "true", api_version="batch/v2"))
    out = kjob("validate", "-f", str(path))
    assert out.returncode == 2
    assert out.stdout == ""
    assert out.stderr == (
        f'error: {path}: The Job "one" is invalid: apiVersion: Unsupported value: "batch/v2": '
        'supported values: "batch/v1" (kjob runs Jobs of the batch/v1 API)\n'
    )


def test_validate_missing_file_exits_2(tmp_path: Path) -> None:
    path = tmp_path / "absent.yaml"
    out = kjob("validate", "-f", str(path))
    assert out.returncode == 2
    assert out.stdout == ""
    assert out.stderr == f"error: {path}: no such file\n"


def test_validate_file_without_a_job_exits_2(tmp_path: Path) -> None:
    path = write(tmp_path, CONFIG_MAP)
    out = kjob("validate", "-f", str(path))
    assert out.returncode == 2
    assert out.stderr == f"error: {path}: no document of kind Job (found kind: ConfigMap)\n"


def test_validate_reads_stdin() -> None:
    text = "---\n".join([CONFIG_MAP, job_doc("one", "true"), job_doc("two", "true")])
    out = kjob("validate", "-f", "-", stdin=text)
    assert out.returncode == 0, out.stderr
    assert out.stdout == "job.batch/one valid (<stdin>)\njob.batch/two valid (<stdin>)\n"
    assert out.stderr == ""

    invalid = kjob("validate", "-f", "-", stdin=job_doc("one", "true", spec="  completions: -1\n"))
    assert invalid.returncode == 2
    assert invalid.stderr == (
        'error: <stdin>: The Job "one" is invalid: spec.completions: Invalid value: -1: '
        "must be greater than or equal to 0\n"
    )


# --- kjob create job -----------------------------------------------------------------------


def test_create_job_indexed_pods_see_their_index(tmp_path: Path) -> None:
    out = kjob(
        "create",
        "job",
        "idx",
        "--completions",
        "3",
        "--parallelism",
        "3",
        "--indexed",
        "--logs",
        "--",
        "sh",
        "-c",
        'echo "index=$JOB_COMPLETION_INDEX"',
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("job.batch/idx created\n")
    logged = re.findall(rf"^\[idx-(\d+)-{SUFFIX}\] (.*)$", out.stdout, flags=re.MULTILINE)
    assert sorted(logged) == [("0", "index=0"), ("1", "index=1"), ("2", "index=2")]
    assert "job.batch/idx: active=0 succeeded=3 failed=0 completedIndexes=0-2\n" in out.stdout
    assert "condition Complete=True reason=CompletionsReached" in out.stdout


@pytest.mark.parametrize("backoff_limit", [0, 2])
def test_create_job_failing_command_exits_1(backoff_limit: int, tmp_path: Path) -> None:
    start = time.monotonic()
    out = kjob(
        "create",
        "job",
        "bad",
        "--backoff-limit",
        str(backoff_limit),
        "--log-dir",
        str(tmp_path),
        "--backoff-initial-seconds",
        "0.01",
        "--",
        "sh",
        "-c",
        "exit 3",
    )
    assert time.monotonic() - start < 5
    assert out.returncode == 1
    assert f"job.batch/bad: active=0 succeeded=0 failed={backoff_limit + 1}\n" in out.stdout
    assert "condition Failed=True reason=BackoffLimitExceeded" in out.stdout


@pytest.mark.parametrize("output", ["yaml", "json"])
@pytest.mark.parametrize("indexed", [False, True])
def test_create_job_dry_run_prints_a_manifest_a_cluster_accepts(
    tmp_path: Path, output: str, indexed: bool
) -> None:
    ran = tmp_path / "ran"
    command = ["sh", "-c", f"touch {ran}; echo -n x", "--", "--image", "-o"]
    flags = ["--completions", "3", "--parallelism", "2", "--backoff-limit", "1"]
    if indexed:
        flags.append("--indexed")
    out = kjob(
        "create", "job", "dry", "--image", "busybox", *flags, "--dry-run", "-o", output, "--", *command
    )
    assert out.returncode == 0, out.stderr
    assert out.stderr == ""
    doc = yaml.safe_load(out.stdout) if output == "yaml" else json.loads(out.stdout)
    assert kubernetes_validate.validate(doc, kubernetes_validate.latest_version(), strict=True)
    assert doc["apiVersion"] == "batch/v1" and doc["kind"] == "Job"
    assert doc["metadata"]["name"] == "dry"
    spec = doc["spec"]
    assert (spec["completions"], spec["parallelism"], spec["backoffLimit"]) == (3, 2, 1)
    # kubectl leaves the default completion mode out.
    assert spec.get("completionMode") == ("Indexed" if indexed else None)
    pod = spec["template"]["spec"]
    assert pod["restartPolicy"] == "Never"
    assert pod["containers"][0]["image"] == "busybox"
    assert pod["containers"][0]["command"] == command
    assert "status" not in doc
    assert not ran.exists()


def test_create_job_dry_run_manifest_needs_an_image() -> None:
    out = kjob("create", "job", "dry", "--dry-run", "-o", "yaml", "--", "echo", "hi")
    assert out.returncode == 2
    assert out.stdout == ""
    assert out.stderr == (
        "error: --image is required to print a manifest: a cluster needs a container image "
        "(kjob ignores it when running locally)\n"
    )


def test_create_job_dry_run_without_output_only_says_so(tmp_path: Path) -> None:
    ran = tmp_path / "ran"
    out = kjob("create", "job", "dry", "--dry-run", "--", "touch", str(ran))
    assert out.returncode == 0, out.stderr
    assert out.stdout == "job.batch/dry created (dry run)\n"
    assert out.stderr == ""
    assert not ran.exists()


@pytest.mark.parametrize(
    "flags", [["--dry-run", "dry"], ["dry", "--dry-run=client"], ["dry", "--dry-run=server"]]
)
def test_dry_run_is_a_flag_or_takes_kubectls_values(flags: list[str], tmp_path: Path) -> None:
    ran = tmp_path / "ran"
    out = kjob("create", "job", *flags, "--", "touch", str(ran))
    assert (out.returncode, out.stdout, out.stderr) == (0, "job.batch/dry created (dry run)\n", "")
    assert not ran.exists()


def test_dry_run_none_runs_the_job(tmp_path: Path) -> None:
    ran = tmp_path / "ran"
    out = kjob("create", "job", "wet", "--dry-run=none", "--", "touch", str(ran))
    assert out.returncode == 0, out.stderr
    assert ran.exists()


def test_run_refuses_a_suspended_job_rather_than_waiting_forever(tmp_path: Path) -> None:
    path = write(tmp_path, job_doc("asleep", "true", spec="  suspend: true\n"))
    out = kjob("run", "-f", str(path))
    assert out.returncode == 2
    assert out.stderr == (
        f"error: {path}: job.batch/asleep has spec.suspend: true, so no pod would run and `kjob run` "
        "would wait forever; remove it (or set it false) to run the Job here\n"
    )


@pytest.mark.parametrize("tail", [[], ["--"]], ids=["no-dashes", "nothing-after-dashes"])
def test_create_job_without_a_command_exits_2(tail: list[str]) -> None:
    out = kjob("create", "job", "empty", *tail)
    assert out.returncode == 2
    assert out.stdout == ""
    assert out.stderr == (
        "error: a command is required after `--` (kjob runs it on this machine: there is no image "
        "entrypoint to fall back on), e.g. kjob create job hello --image=busybox -- echo hi\n"
    )


def test_create_job_invalid_option_value_exits_2() -> None:
    out = kjob("create", "job", "neg", "--completions", "-1", "--", "true")
    assert out.returncode == 2
    assert out.stdout == ""
    assert out.stderr == (
        'error: kjob create job: The Job "neg" is invalid: spec.completions: Invalid value: -1: '
        "must be greater than or equal to 0\n"
    )


def test_create_job_leaves_the_command_options_to_the_command() -> None:
    # After `--`, -o and --dry-run are the command's arguments: the Job runs, nothing is printed
    # as YAML. `echo -n` leaves a last line without newline, printed all the same at the end.
    out = kjob(
        "create",
        "job",
        "echo",
        "--logs",
        "--",
        "sh",
        "-c",
        'echo -n x; printf "|%s" "$@"',
        "sh",
        "-o",
        "yaml",
        "--dry-run",
        "--image",
    )
    assert out.returncode == 0, out.stderr
    assert re.findall(rf"^\[echo-{SUFFIX}\] (.*)$", out.stdout, flags=re.MULTILINE) == [
        "x|-o|yaml|--dry-run|--image"
    ]
    assert "dry run" not in out.stdout
    assert "condition Complete=True reason=CompletionsReached" in out.stdout


# --- progress display ----------------------------------------------------------------------

BAR_JOB = ["create", "job", "bar", "--completions=4", "--parallelism=2", "--", "sh", "-c", "sleep 0.1"]


def test_progress_bar_redraws_in_place_on_a_terminal() -> None:
    code, text = run_on_a_tty([*KJOB, *BAR_JOB])
    assert code == 0, text
    assert text.startswith("job.batch/bar created\n")
    # The first state (nothing done yet) and the last are always drawn; each draw starts with \r.
    draws = re.findall(
        r"\rjob\.batch/bar \[([#.]{24})\] (\d)/4 active=(\d) failed=0 "
        r"\d\d:\d\d<(?:\d\d:\d\d|--:--) (\w+)",
        text,
    )
    assert len(draws) >= 2, text
    assert (draws[0][0], draws[0][1], draws[0][3]) == ("." * 24, "0", "Running")
    assert max(int(active) for _, _, active, _ in draws) <= 2  # parallelism
    assert draws[-1] == ("#" * 24, "4", "0", "Complete")
    assert "[####" in text
    assert text.endswith(" Complete\n")
    # Conditions are printed above the bar, on lines of their own.
    assert "\njob.batch/bar: condition Complete=True reason=CompletionsReached" in text
    # No line-per-change summaries on a terminal.
    assert "job.batch/bar: active=" not in text


def test_no_progress_bar_off_a_terminal() -> None:
    out = kjob(*BAR_JOB)
    assert out.returncode == 0, out.stderr
    assert "\r" not in out.stdout and "\r" not in out.stderr
    assert "[" not in out.stdout
    assert "job.batch/bar: active=0 succeeded=4 failed=0\n" in out.stdout
    assert "job.batch/bar: condition Complete=True reason=CompletionsReached" in out.stdout


# --- help ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (
            ["--help"],
            [
                "usage: kjob [-h] [--version] COMMAND ...",
                "run run the Job in a manifest, in the foreground",
                "validate check manifests without running them",
                "kjob create job hello --image=busybox --dry-run -o yaml -- echo hi > job.yaml",
                "exit status: 0 complete (or valid), 1 failed or timed out, 2 invalid input, 130 interrupted",
            ],
        ),
        (
            ["run", "--help"],
            [
                "-f FILE, --filename FILE",
                "--timeout SECONDS",
                "-o {json,yaml,wide,name}, --output {json,yaml,wide,name}",
                "--logs",
                "--strict",
                "--backoff-initial-seconds SECONDS",
                "Exit status: 0 Complete, 1 Failed or timed out, 2 invalid input, 130 interrupted",
            ],
        ),
        (
            ["validate", "--help"],
            [
                "-f FILE, --filename FILE",
                "--strict",
                "Exit status 0 if all are valid, 2 if not.",
            ],
        ),
        (
            ["create", "job", "--help"],
            [
                "usage: kjob create job NAME [options] -- CMD [ARGS...]",
                "--image IMAGE",
                "--completions N",
                "--parallelism N",
                "--indexed",
                "--backoff-limit N",
                "--dry-run=client",
                "-o {json,yaml,wide,name}",
                "example: kjob create job hello --completions=3 --parallelism=2 -- echo hi",
            ],
        ),
    ],
    ids=["kjob", "run", "validate", "create-job"],
)
def test_help(args: list[str], expected: list[str]) -> None:
    out = subprocess.run(
        [*KJOB, *args], capture_output=True, text=True, timeout=20, env={**os.environ, "COLUMNS": "1000"}
    )
    assert out.returncode == 0
    assert out.stderr == ""
    text = " ".join(out.stdout.split())
    for phrase in expected:
        assert phrase in text, phrase


def test_no_command_prints_the_help_and_exits_2() -> None:
    out = kjob()
    assert out.returncode == 2
    assert out.stdout.startswith("usage: kjob [-h] [--version] COMMAND ...\n")


def test_logs_of_a_job_its_ttl_removes_at_once_are_still_printed(tmp_path: Path) -> None:
    """With ttlSecondsAfterFinished: 0 the Job is gone the moment it completes; the CLI keeps
    the pods' logs until it has printed them."""
    path = write(tmp_path, job_doc("ttl", "echo hello-from-pod", spec="  ttlSecondsAfterFinished: 0\n"))
    for _ in range(5):
        out = kjob("run", "-f", str(path), "--logs")
        assert out.returncode == 0, out.stdout + out.stderr
        assert "] hello-from-pod\n" in out.stdout
        assert "condition Complete=True" in out.stdout


def test_a_job_another_controller_manages_is_an_error_not_a_traceback(tmp_path: Path) -> None:
    path = write(tmp_path, job_doc("other", "true", spec="  managedBy: example.com/foo\n"))
    out = kjob("run", "-f", str(path))
    assert out.returncode == 2
    assert out.stderr.startswith("error: job.batch/other: Job default/other has spec.managedBy ")
    assert "Traceback" not in out.stderr


def test_a_log_dir_that_cannot_be_made_is_an_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    path = write(tmp_path, job_doc("nolog", "true"))
    out = kjob("run", "-f", str(path), "--log-dir", str(blocker / "sub"))
    assert out.returncode == 2
    assert out.stderr.startswith("error: job.batch/nolog: failed to create the log folder")
