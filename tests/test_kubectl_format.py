"""kubectl's shapes, in-process: label selectors, Go durations, the tabwriter, the tables of
``kjob get``, ``kjob describe``; and the verbs themselves through ``cli.main`` over a small
in-memory registry standing in for the store (``Job.get``/``Job.list``), with real pods."""

from __future__ import annotations

import datetime as _dt
import json
import os
import signal
import threading
from collections.abc import Iterator, Mapping
from pathlib import Path

import pytest
import yaml

import kjob
from kjob import _kubectl, cli
from kjob._job import created_at
from kjob._selectors import Requirement, parse_selector, selector_of

# ---- selectors --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        ("a=b", "a=b"),
        ("a==b,c!=d", "a==b,c!=d"),
        ("a", "a"),
        ("!a", "!a"),
        ("b in (y,x), a notin (z)", "a notin (z),b in (x,y)"),
        ("x in (foo,,baz),y,z notin ()", "x in (,baz,foo),y,z notin ()"),
        ("n>3", "n>3"),
        ("example.com/app=web", "example.com/app=web"),
        ("", ""),
        ("k in (in)", "k in (in)"),
    ],
)
def test_selector_parses_kubectl_syntax(text: str, shown: str) -> None:
    assert str(parse_selector(text)) == shown


LABELS = {"app": "web", "tier": "front", "n": "5"}


@pytest.mark.parametrize(
    ("text", "matches"),
    [
        ("app=web", True),
        ("app==web", True),
        ("app=db", False),
        ("app!=db", True),
        ("app!=web", False),
        ("missing!=x", True),
        ("app", True),
        ("missing", False),
        ("!missing", True),
        ("!app", False),
        ("tier in (back,front)", True),
        ("tier in (back)", False),
        ("tier notin (back)", True),
        ("missing notin (back)", True),
        ("app=web,tier=back", False),
        ("n>4", True),
        ("n<4", False),
        ("", True),
    ],
)
def test_selector_matches_as_kubernetes(text: str, matches: bool) -> None:
    assert parse_selector(text).matches(LABELS) is matches


NAME_RULE = (
    "name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an "
    "alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is "
    "'([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')"
)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("a in", "unable to parse requirement: found '' expected: '('"),
        ("a=b,", "found '', expected: identifier after ','"),
        ("=a", "found '=', expected: !, identifier, or 'end of string'"),
        ("a=b c", "found 'c', expected: ',' or 'end of string'"),
        ("a b", "unable to parse requirement: found 'b', expected: '=', '!=', '==', 'in', notin'"),
        ("a in (x y)", "unable to parse requirement: found 'y', expected: ',' or ')'"),
        ("!a=b", "found '=', expected: ',' or 'end of string'"),
        ("-ltier=x", f'unable to parse requirement: invalid label key "-ltier": {NAME_RULE}'),
    ],
)
def test_selector_errors_are_the_api_servers(text: str, message: str) -> None:
    with pytest.raises(ValueError) as caught:
        parse_selector(text)
    assert str(caught.value) == message


def test_selector_of_mapping_and_none() -> None:
    assert selector_of(None).matches({}) is True
    assert selector_of({"app": "web"}).requirements == (Requirement("app", "=", ("web",)),)
    assert selector_of({"app": "web", "tier": "front"}).matches(LABELS) is True
    assert selector_of("app=db").matches(LABELS) is False


# ---- durations --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("60s", 60.0),
        ("1m30s", 90.0),
        ("500ms", 0.5),
        ("0", 0.0),
        ("1.5h", 5400.0),
        ("-1s", -1.0),
        ("2h3m", 7380.0),
    ],
)
def test_go_durations(text: str, seconds: float) -> None:
    assert _kubectl.parse_duration(text) == seconds


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("5", 'time: missing unit in duration "5"'),
        ("x", 'time: invalid duration "x"'),
        ("", 'time: invalid duration ""'),
        ("5q", 'time: unknown unit "q" in duration "5q"'),
        (".s", 'time: invalid duration ".s"'),
    ],
)
def test_go_duration_errors(text: str, message: str) -> None:
    with pytest.raises(ValueError) as caught:
        _kubectl.parse_duration(text)
    assert str(caught.value) == message


# ---- alignment --------------------------------------------------------------------------


def test_tabwriter_aligns_column_blocks_as_go_does() -> None:
    text = "Name:\tpi\nLabels:\ta=b\n\tc=d\nPod Template:\n  Labels:\tx=y\nEvents:\t<none>\n"
    assert _kubectl.go_tabwriter(text) == (
        "Name:    pi\nLabels:  a=b\n         c=d\nPod Template:\n  Labels:  x=y\nEvents:    <none>\n"
    )


def test_table_minimum_width_is_kubectls() -> None:
    # A column narrower than 6 with its padding is widened to 6, as kubectl's tabwriter does.
    assert _kubectl.render_table(["IP", "N"], [["a", "b"]]) == "IP    N\na     b"


# ---- Jobs and pods ------------------------------------------------------------------------


@pytest.fixture
def done() -> Iterator[kjob.Job]:
    job = kjob.Job(name="fmt", command=["sh", "-c", "echo one; echo two"], completions=2, parallelism=2)
    job.run(timeout=30)
    yield job
    job.delete()


def _later(job: kjob.Job, seconds: float) -> _dt.datetime:
    return created_at(job) + _dt.timedelta(seconds=seconds)


def test_get_jobs_table(done: kjob.Job) -> None:
    now = _later(done, 130)
    assert _kubectl.job_rows([done], now=now) == (
        "NAME   STATUS     COMPLETIONS   DURATION   AGE\nfmt    Complete   2/2           0s         2m10s"
    )
    assert _kubectl.job_rows([done], namespace=True, now=now).splitlines()[1].split() == [
        "default",
        "fmt",
        "Complete",
        "2/2",
        "0s",
        "2m10s",
    ]
    wide = _kubectl.job_rows([done], wide=True, now=now).splitlines()
    assert wide[0].split() == [
        "NAME",
        "STATUS",
        "COMPLETIONS",
        "DURATION",
        "AGE",
        "CONTAINERS",
        "IMAGES",
        "SELECTOR",
    ]
    assert wide[1].split()[5:] == ["fmt", "<none>", f"batch.kubernetes.io/controller-uid={done.uid}"]


def test_get_pods_table(done: kjob.Job) -> None:
    pods = sorted(done.pods(), key=lambda p: p.name)
    now = max(p.creation_time for p in pods if p.creation_time) + _dt.timedelta(seconds=3 * 3600)
    table = _kubectl.pod_rows([(done, p) for p in pods], wide=True, now=now).splitlines()
    node = max(4, len(pods[0].node_name or "")) + 3
    assert table[0] == (
        "NAME".ljust(len(pods[0].name) + 3)
        + "READY   STATUS      RESTARTS   AGE   IP       "
        + "NODE".ljust(node)
        + "NOMINATED NODE   READINESS GATES"
    )
    assert [line.split()[:5] for line in table[1:]] == [[p.name, "0/1", "Completed", "0", "3h"] for p in pods]
    assert all(
        line.split()[5] == "<none>" and line.split()[6] == p.node_name for line, p in zip(table[1:], pods)
    )


def test_pod_status_words() -> None:
    job = kjob.Job(name="fmt-fail", command=["sh", "-c", "exit 3"], backoff_limit=0)
    try:
        job.run(timeout=30)
        (pod,) = job.pods()
        assert _kubectl.pod_status_word(pod) == "Error"
        assert _kubectl.job_row(job)[1] == "Failed"
    finally:
        job.delete()


def test_describe_job(done: kjob.Job) -> None:
    status = done.status
    assert status.start_time is not None and status.completion_time is not None
    events = done.events()
    now = max(e.time for e in events if e.time) + _dt.timedelta(seconds=65)
    text = _kubectl.describe_job(done, now=now)

    def stamp(t: _dt.datetime) -> str:
        return t.astimezone().strftime("%a, %d %b %Y %H:%M:%S %z")

    created = sorted(e.message for e in events if e.reason == "SuccessfulCreate")
    uid = done.uid
    expected_head = f"""\
Name:             fmt
Namespace:        default
Selector:         batch.kubernetes.io/controller-uid={uid}
Labels:           batch.kubernetes.io/controller-uid={uid}
                  batch.kubernetes.io/job-name=fmt
                  controller-uid={uid}
                  job-name=fmt
Annotations:      <none>
Parallelism:      2
Completions:      2
Completion Mode:  NonIndexed
Suspend:          false
Backoff Limit:    6
Start Time:       {stamp(status.start_time)}
Completed At:     {stamp(status.completion_time)}
Duration:         0s
Pods Statuses:    0 Active (0 Ready) / 2 Succeeded / 0 Failed
Pod Template:
  Labels:  batch.kubernetes.io/controller-uid={uid}
           batch.kubernetes.io/job-name=fmt
           controller-uid={uid}
           job-name=fmt
  Containers:
   fmt:
    Image:      {""}
    Port:       <none>
    Host Port:  <none>
    Command:
      sh
      -c
      echo one; echo two
    Environment:   <none>
    Mounts:        <none>
  Volumes:         <none>
  Node-Selectors:  <none>
  Tolerations:     <none>
Events:
  Type    Reason            Age   From            Message
  ----    ------            ----  ----            -------
"""
    assert text.startswith(expected_head), text
    rows = text[len(expected_head) :].splitlines()
    assert sorted(r.split("job-controller  ")[1] for r in rows if "SuccessfulCreate" in r) == created
    assert rows[-1] == "  Normal  Completed         65s   job-controller  Job completed"


def test_list_document_and_dump() -> None:
    doc = _kubectl.list_document([{"kind": "Job"}])
    assert doc == {
        "apiVersion": "v1",
        "items": [{"kind": "Job"}],
        "kind": "List",
        "metadata": {"resourceVersion": ""},
    }
    assert json.loads(_kubectl.dump(doc, "json")) == doc
    assert yaml.safe_load(_kubectl.dump(doc, "yaml")) == doc


# ---- the verbs over an in-memory registry ---------------------------------------------------


class Registry:
    """``Job.get``/``Job.list`` for Jobs made in this process, until the store is merged."""

    def __init__(self) -> None:
        self.jobs: dict[tuple[str, str], kjob.Job] = {}

    def add(self, job: kjob.Job) -> kjob.Job:
        self.jobs[(job.namespace, job.name)] = job
        return job

    def get(self, name: str, namespace: str = "default") -> kjob.Job:
        job = self.jobs.get((namespace, name))
        if job is None or job.is_deleted:
            raise LookupError(f'jobs.batch "{name}" not found')
        return job

    def list(
        self, namespace: str | None = None, labels: Mapping[str, str] | str | None = None
    ) -> list[kjob.Job]:
        selector = selector_of(labels)
        found = [
            job
            for (ns, _), job in sorted(self.jobs.items())
            if (namespace is None or ns == namespace)
            and not job.is_deleted
            and selector.matches(job.to_manifest(include_status=True)["metadata"]["labels"])
        ]
        return found


@pytest.fixture
def registry(monkeypatch: pytest.MonkeyPatch) -> Iterator[Registry]:
    reg = Registry()
    monkeypatch.setattr(kjob.Job, "get", reg.get, raising=False)
    monkeypatch.setattr(kjob.Job, "list", reg.list, raising=False)
    yield reg
    for job in reg.jobs.values():
        job.delete()


def run(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = cli.main(args)
    out, err = capsys.readouterr()
    return code, out, err


def test_verbs_get_describe_logs_wait_delete(registry: Registry, capsys: pytest.CaptureFixture[str]) -> None:
    job = registry.add(
        kjob.Job(name="v", command=["sh", "-c", "echo a; echo b; echo c"], labels={"team": "x"})
    )
    job.run(timeout=30)
    (pod,) = job.pods()

    code, out, err = run(["get", "jobs"], capsys)
    assert (code, err) == (0, "")
    assert out.splitlines()[0] == "NAME   STATUS     COMPLETIONS   DURATION   AGE"
    assert out.splitlines()[1].split()[:3] == ["v", "Complete", "1/1"]
    assert run(["get", "jobs", "-o", "name"], capsys) == (0, "job.batch/v\n", "")
    assert run(["get", "job/v", "-o", "name"], capsys) == (0, "job.batch/v\n", "")
    assert run(["get", "jobs", "-l", "team=x", "-o", "name"], capsys) == (0, "job.batch/v\n", "")
    assert run(["get", "jobs", "-l", "team=y"], capsys) == (
        0,
        "",
        "No resources found in default namespace.\n",
    )
    assert run(["get", "jobs", "-A", "-l", "team=y"], capsys) == (0, "", "No resources found\n")
    code, out, _ = run(["get", "job", "v", "-o", "json"], capsys)
    assert json.loads(out)["kind"] == "Job"
    code, out, _ = run(["get", "jobs", "-o", "yaml"], capsys)
    assert yaml.safe_load(out)["kind"] == "List"
    assert run(["get", "pods", "-l", "job-name=v", "-o", "name"], capsys) == (0, f"pod/{pod.name}\n", "")
    assert run(["get", "pod", pod.name, "-o", "name"], capsys) == (0, f"pod/{pod.name}\n", "")
    assert run(["get", "pod", "nope"], capsys) == (
        1,
        "",
        'Error from server (NotFound): pods "nope" not found\n',
    )
    assert run(["get", "job", "nope"], capsys) == (
        1,
        "",
        'Error from server (NotFound): jobs.batch "nope" not found\n',
    )

    code, out, err = run(["describe", "job", "v"], capsys)
    assert (code, err) == (0, "")
    assert out.startswith("Name:             v\nNamespace:        default\n")
    assert "Pods Statuses:    0 Active (0 Ready) / 1 Succeeded / 0 Failed\n" in out

    assert run(["logs", "job/v"], capsys) == (0, "a\nb\nc\n", "")
    assert run(["logs", pod.name, "--tail", "2"], capsys) == (0, "b\nc\n", "")
    assert run(["logs", "job/v", "--prefix", "--tail=1"], capsys) == (0, f"[pod/{pod.name}/v] c\n", "")
    assert run(["logs", "-l", "job-name=v", "--prefix"], capsys) == (
        0,
        "".join(f"[pod/{pod.name}/v] {x}\n" for x in "abc"),
        "",
    )

    assert run(["wait", "--for=condition=complete", "job/v"], capsys) == (
        0,
        "job.batch/v condition met\n",
        "",
    )
    assert run(["wait", "--for=condition=failed", "job/v", "--timeout=50ms"], capsys) == (
        1,
        "",
        "error: timed out waiting for the condition on jobs/v\n",
    )

    assert run(["delete", "job", "v", "nope"], capsys) == (
        1,
        'job.batch "v" deleted\n',
        'Error from server (NotFound): jobs.batch "nope" not found\n',
    )
    assert job.is_deleted
    # kubectl's IsDeleted: a Job already gone is skipped, silently.
    assert run(["wait", "--for=delete", "job/v"], capsys) == (0, "", "")
    assert run(["delete", "jobs", "--all"], capsys) == (0, "No resources found\n", "")


def test_logs_follow_until_the_pod_ends(registry: Registry, capsys: pytest.CaptureFixture[str]) -> None:
    job = registry.add(kjob.Job(name="f", command=["sh", "-c", "echo 1; sleep 0.3; echo 2"]))
    job.start()
    code, out, err = run(["logs", "-f", "job/f"], capsys)
    assert (code, out, err) == (0, "1\n2\n", "")


def test_usage_errors_exit_1_as_kubectl(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as caught:
        cli.main(["get"])
    assert caught.value.code == 1
    assert capsys.readouterr().err == (
        "error: the following arguments are required: RESOURCE\nSee 'kjob get --help' for usage.\n"
    )
    assert run(["wait", "job/x", "--for=delete", "--timeout=5q"], capsys) == (
        1,
        "",
        'error: invalid argument "5q" for "--timeout" flag: time: unknown unit "q" in duration "5q"\n',
    )
    assert run(["get", "widgets"], capsys) == (
        1,
        "",
        'error: the server doesn\'t have a resource type "widgets"\n',
    )
    assert run(["get", "pods", "-l", "a in"], capsys) == (
        1,
        "",
        'Error from server (BadRequest): Unable to find "/v1, Resource=pods" that match label selector "a in", '
        "field selector \"\": unable to parse requirement: found '' expected: '('\n",
    )


def test_get_watch_prints_a_row_per_change_and_exits_1_on_ctrl_c(
    registry: Registry, capsys: pytest.CaptureFixture[str]
) -> None:
    job = registry.add(kjob.Job(name="w", command=["sh", "-c", "sleep 0.3"]))
    job.start()
    # Ctrl-C while the watch polls; kubectl's interrupt handler exits 1.
    timer = threading.Timer(1.0, lambda: os.kill(os.getpid(), signal.SIGINT))
    timer.start()
    try:
        code, out, err = run(["get", "jobs", "-w"], capsys)
    finally:
        timer.cancel()
    lines = out.splitlines()
    assert (code, err) == (1, "")
    assert lines[0] == "NAME   STATUS    COMPLETIONS   DURATION   AGE"
    assert lines[1].split()[:3] == ["w", "Running", "0/1"]
    assert lines[-1].split()[:3] == ["w", "Complete", "1/1"]


def test_run_leaves_a_failed_job_and_its_logs_to_the_store(
    registry: Registry, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    # With the store (stood in for by the registry), `kjob run` no longer deletes a finished
    # Job, whose logs the store keeps, and points at `kjob logs` instead of a folder.
    path = tmp_path / "fail.yaml"
    path.write_text(
        "apiVersion: batch/v1\nkind: Job\nmetadata: {name: boom}\nspec:\n  backoffLimit: 0\n  template:\n"
        "    spec:\n      restartPolicy: Never\n      containers:\n"
        "      - {name: c, image: busybox, command: [sh, -c, 'echo hello; exit 3']}\n"
    )
    code, _, err = run(["run", "-f", str(path)], capsys)
    assert code == 1
    assert err.splitlines()[-1] == "pod logs: kjob logs job/boom"
    assert "pod logs kept in" not in err


def test_logs_of_a_pod_of_two_containers(registry: Registry, capsys: pytest.CaptureFixture[str]) -> None:
    job = registry.add(
        kjob.Job.from_manifest(
            {
                "apiVersion": "batch/v1",
                "kind": "Job",
                "metadata": {"name": "two"},
                "spec": {
                    "template": {
                        "spec": {
                            "restartPolicy": "Never",
                            "containers": [
                                {"name": "a", "image": "busybox", "command": ["sh", "-c", "echo A"]},
                                {"name": "b", "image": "busybox", "command": ["sh", "-c", "echo B"]},
                            ],
                        }
                    }
                },
            }
        )
    )
    job.run(timeout=30)
    assert run(["logs", "job/two"], capsys) == (0, "A\n", 'Defaulted container "a" out of: a, b\n')
    assert run(["logs", "job/two", "-c", "b"], capsys) == (0, "B\n", "")
    assert run(["get", "pods", "-l", "job-name=two"], capsys)[1].splitlines()[1].split()[1] == "0/2"


def test_wait_for_delete_while_it_goes(registry: Registry, capsys: pytest.CaptureFixture[str]) -> None:
    job = registry.add(kjob.Job(name="d", command=["sleep", "30"]))
    job.start()
    deleter = threading.Timer(0.3, job.delete)
    deleter.start()
    try:
        assert run(["wait", "--for=delete", "job/d", "--timeout=20s"], capsys) == (
            0,
            "job.batch/d condition met\n",
            "",
        )
    finally:
        deleter.join()


def test_job_row_of_a_suspended_job_and_of_a_work_queue() -> None:
    held = kjob.Job(name="held", command=["true"], completions=3, suspend=True)
    queue = kjob.Job(name="queue", command=["sh", "-c", "exit 0"], parallelism=3)
    try:
        held.start()
        queue.run(timeout=30)
        now = _later(held, 5)
        assert _kubectl.job_row(held, now=now) == ["held", "Suspended", "0/3", "", "5s"]
        row = _kubectl.job_row(queue, now=_later(queue, 3 * 86400 + 7200))
        assert row[:3] == ["queue", "Complete", f"{queue.status.succeeded}/1 of 3"]
        assert row[4] == "3d2h"
    finally:
        held.delete()
        queue.delete()
