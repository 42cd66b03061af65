"""kjob.DaskExecutor on a real Dask cluster on loopback: a `dask scheduler` and two
`dask worker --nworkers 1` processes (random ports), and `distributed.LocalCluster`.

Every cluster is torn down at the end of its fixture, and every process it had started
beneath its workers (kjob agents, their shepherds, kjob workers, pods) must then be gone.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import kjob
from conftest import no_pids_left

distributed = pytest.importorskip("distributed")

DASK = os.path.join(os.path.dirname(sys.executable), "dask")
KJOB_MARKERS = ("KJOB_JOB_UID", "KJOB_SESSION", "KJOB_OWNERS", "KJOB_SHEPHERD_FOR")
DISRUPTION = {
    "rules": [{"action": "Ignore", "onPodConditions": [{"type": "DisruptionTarget", "status": "True"}]}]
}


def children() -> dict[int, list[int]]:
    """Every live process's children, by parent pid."""
    tree: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if fields[0] != "Z":
                tree.setdefault(int(fields[1]), []).append(int(entry.name))
    return tree


def descendants(pids: list[int]) -> set[int]:
    tree, found, todo = children(), set(), list(pids)
    while todo:
        for child in tree.get(todo.pop(), []):
            if child not in found:
                found.add(child)
                todo.append(child)
    return found


def alive(pids: set[int], timeout: float = 10.0) -> set[int]:
    """Those of `pids` still alive (not zombies) after up to `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        left = {p for p in pids if Path(f"/proc/{p}").exists() and _state(p) not in ("Z", "")}
        if not left or time.monotonic() > deadline:
            return left
        time.sleep(0.05)


def _state(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return ""


class Cluster:
    """A `dask scheduler` and `dask worker` processes on 127.0.0.1, and a client."""

    def __init__(self, tmp: Path, workers: int = 2) -> None:
        self.env = {k: v for k, v in os.environ.items() if k not in KJOB_MARKERS}
        self.file = tmp / "scheduler.json"
        self.log = (tmp / "cluster.log").open("wb")
        self.scheduler = self._spawn(
            "scheduler",
            "--host",
            "127.0.0.1",
            "--port",
            "0",
            "--no-dashboard",
            "--scheduler-file",
            str(self.file),
        )
        deadline = time.monotonic() + 30
        while not self.file.exists() or not self.file.read_text().strip():
            assert time.monotonic() < deadline, "the scheduler did not start"
            time.sleep(0.05)
        self.address: str = json.loads(self.file.read_text())["address"]
        self.workers = [
            self._spawn(
                "worker",
                "--nworkers",
                "1",
                "--nthreads",
                "2",
                "--host",
                "127.0.0.1",
                "--no-dashboard",
                "--scheduler-file",
                str(self.file),
            )  # fmt: skip
            for _ in range(workers)
        ]
        self.client = distributed.Client(self.address, timeout=30, set_as_default=False)
        self.client.wait_for_workers(workers, timeout=30)

    def _spawn(self, *args: str) -> subprocess.Popen[bytes]:
        return subprocess.Popen(
            [DASK, *args], stdout=self.log, stderr=self.log, env=self.env, start_new_session=True
        )

    def worker_pids(self) -> dict[str, int]:
        """The Dask worker processes (the nannies' children), by worker address."""
        return dict(self.client.run(os.getpid))

    def close(self) -> None:
        below = descendants([w.pid for w in self.workers])
        self.client.close()
        for p in [*self.workers, self.scheduler]:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for p in [*self.workers, self.scheduler]:
            try:
                p.wait(15)
            except subprocess.TimeoutExpired:
                os.killpg(p.pid, signal.SIGKILL)
                p.wait()
        self.log.close()
        left = alive(below)
        assert not left, f"processes left behind by the cluster's workers: {left}"


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    c = Cluster(tmp_path_factory.mktemp("dask"))
    yield c
    c.close()


@pytest.fixture
def own_cluster(tmp_path: Path) -> Iterator[Cluster]:
    """A cluster of its own, for a test that breaks it."""
    c = Cluster(tmp_path)
    yield c
    c.close()


@pytest.fixture
def executor(cluster: Cluster) -> kjob.DaskExecutor:
    return kjob.DaskExecutor(cluster.client)


def square(i: int) -> int:
    return i * i


def test_indexed_callable_job_results_on_both_workers(cluster: Cluster, executor: kjob.DaskExecutor) -> None:
    job = kjob.Job(target=square, completions=12, parallelism=4, completion_mode="Indexed", executor=executor)
    status = job.run(timeout=60)
    assert (status.succeeded, status.failed, status.is_complete) == (12, 0, True)
    assert job.results() == {i: i * i for i in range(12)}
    nodes = {p.node_name for p in job.pods()}
    assert nodes == set(cluster.worker_pids()), "pods on both workers, named by their Dask address"
    assert job.executor is executor


def test_command_pods_exit_codes_logs_and_pod_failure_policy(executor: kjob.DaskExecutor) -> None:
    pfp = {"rules": [{"action": "FailJob", "onExitCodes": {"operator": "In", "values": [42]}}]}
    script = (
        'echo "pod $JOB_COMPLETION_INDEX"; [ "$JOB_COMPLETION_INDEX" = 2 ] && sleep 0.3 && exit 42; exit 0'
    )
    job = kjob.Job(
        command=["sh", "-c", script],
        completions=3,
        parallelism=3,
        completion_mode="Indexed",
        backoff_limit=6,
        pod_failure_policy=pfp,
        executor=executor,
    )
    status = job.run(timeout=60)
    failed = status.condition("Failed")
    assert failed is not None and failed.reason == "PodFailurePolicy"
    pod = next(p for p in job.pods() if p.index == 2)
    assert failed.message == (
        f"Container {job.name} for pod default/{pod.name} failed with exit code 42 "
        "matching FailJob rule at index 0"
    )
    assert sorted((p.index, p.exit_code) for p in job.pods()) == [(0, 0), (1, 0), (2, 42)]
    assert [job.logs(index=i) for i in range(3)] == ["pod 0\n", "pod 1\n", "pod 2\n"]
    assert not no_pids_left(job.uid)


def pid_written(path: Path) -> int:
    deadline = time.monotonic() + 30
    while not path.exists() or not path.read_text().strip():
        assert time.monotonic() < deadline, f"no pid in {path}"
        time.sleep(0.02)
    return int(path.read_text())


@pytest.mark.parametrize("stop", ["delete", "suspend", "deadline"])
def test_a_stuck_command_pod_is_killed_with_no_process_left(
    executor: kjob.DaskExecutor, tmp_path: Path, stop: str
) -> None:
    pidfile = tmp_path / "pid"
    job = kjob.Job(
        command=["sh", "-c", f"echo started; echo $$$$ > {pidfile}; exec sleep 60"],
        termination_grace_period_seconds=1,
        active_deadline_seconds=2 if stop == "deadline" else None,
        executor=executor,
    )
    job.start()
    pid = pid_written(pidfile)
    # Its output streams back while it runs.
    deadline = time.monotonic() + 10
    while job.logs() != "started\n":
        assert time.monotonic() < deadline, repr(job.logs())
        time.sleep(0.02)
    if stop == "delete":
        job.delete(timeout=20)
        assert job.is_deleted
    elif stop == "suspend":
        job.suspend()
        deadline = time.monotonic() + 20
        while job.status.active or job.status.terminating:
            assert time.monotonic() < deadline
            time.sleep(0.02)
        assert job.status.condition("Suspended") is not None
        assert job.pods()[0].phase == "Failed"
    else:
        status = job.wait(timeout=20)
        failed = status.condition("Failed")
        assert failed is not None and failed.reason == "DeadlineExceeded"
    assert not alive({pid}, timeout=5), "the pod's process on the worker is gone"
    if stop != "delete":
        assert job.logs(pod=job.pods()[0].name) == "started\n"
    job.delete(timeout=20)
    assert not no_pids_left(job.uid)


def sleep_forever(pidfile: str) -> None:
    Path(pidfile).write_text(str(os.getpid()))
    time.sleep(60)


def test_a_stuck_callable_pod_is_killed_on_delete(executor: kjob.DaskExecutor, tmp_path: Path) -> None:
    pidfile = tmp_path / "pid"
    job = kjob.Job(
        target=sleep_forever, args=[str(pidfile)], termination_grace_period_seconds=1, executor=executor
    )
    job.start()
    pid = pid_written(pidfile)
    job.delete(timeout=20)
    assert job.is_deleted
    assert not alive({pid}, timeout=5), "the kjob worker running the pod on the Dask worker is gone"


def disrupted_job(cluster: Cluster, script: str, pods: int, indexed: bool) -> kjob.Job:
    """A started Job of `pods` pods running `script` on `cluster`, all running; disruptions are
    ignored (as a pod failure policy says), any other failure fails it."""
    job = kjob.Job(
        command=["sh", "-c", script],
        completions=pods,
        parallelism=pods,
        completion_mode="Indexed" if indexed else "NonIndexed",
        backoff_limit=0,
        pod_failure_policy=DISRUPTION,
        backoff_initial_seconds=0.01,
        executor=kjob.DaskExecutor(cluster.client),
    )
    job.start()
    deadline = time.monotonic() + 20
    while job.status.ready < pods:
        assert time.monotonic() < deadline
        time.sleep(0.02)
    return job


def test_sigkill_of_a_dask_worker_fails_its_pods_and_the_job_completes_on_the_other(
    own_cluster: Cluster,
) -> None:
    job = disrupted_job(own_cluster, "sleep 1.5", pods=4, indexed=True)
    victim, pid = sorted(own_cluster.worker_pids().items())[0]
    on_victim = {p.name for p in job.pods() if p.node_name == victim}
    assert len(on_victim) == 2
    os.kill(pid, signal.SIGKILL)
    status = job.wait(timeout=30)
    assert status.is_complete and (status.succeeded, status.failed) == (4, 0)
    lost = [p for p in job.pods() if p.name in on_victim]
    for pod in lost:
        assert pod.phase == "Failed"
        assert [(c.type, c.status, c.reason, c.message) for c in pod.conditions] == [
            ("DisruptionTarget", "True", "DeletionByPodGC", "PodGC: node no longer exists")
        ]
    survivors = [p for p in job.pods() if p.name not in on_victim]
    assert {p.phase for p in survivors} == {"Succeeded"}
    assert victim not in {p.node_name for p in survivors}
    assert not no_pids_left(job.uid)
    job.delete()


def test_the_scheduler_going_away_fails_the_executor_and_nothing_hangs(own_cluster: Cluster) -> None:
    job = disrupted_job(own_cluster, "exec sleep 60", pods=2, indexed=False)
    own_cluster.scheduler.send_signal(signal.SIGKILL)
    status = job.wait(timeout=30)
    failed = status.condition("Failed")
    assert failed is not None and failed.reason == "BackoffLimitExceeded"
    started_late = [p for p in job.pods() if p.reason == "StartError"]
    assert started_late, [(p.name, p.reason, p.message) for p in job.pods()]
    assert started_late[0].message is not None
    assert started_late[0].message.startswith(
        f"no remote worker can run the pod: the Dask scheduler at {own_cluster.address} went away"
    )
    assert not no_pids_left(job.uid)
    with pytest.raises(kjob.KjobError, match="the Dask scheduler at .* is gone"):
        kjob.Job(command=["true"], executor=job.executor).start()
    job.delete()


def test_local_cluster_with_processes(tmp_path: Path) -> None:
    cluster = distributed.LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0", host="127.0.0.1"
    )
    client = distributed.Client(cluster, set_as_default=False)
    worker_pids = list(client.run(os.getpid).values())
    try:
        job = kjob.Job(
            target=square,
            completions=6,
            parallelism=2,
            completion_mode="Indexed",
            executor=kjob.DaskExecutor(client),
        )
        assert job.run(timeout=60).is_complete
        assert job.results() == {i: i * i for i in range(6)}
        below = descendants(worker_pids)
        assert below, "each worker hosts an agent"
    finally:
        client.close()
        cluster.close()
    assert not alive(below)


def test_the_cli_runs_a_manifest_on_the_cluster(cluster: Cluster, tmp_path: Path) -> None:
    manifest = tmp_path / "job.yaml"
    manifest.write_text(
        "apiVersion: batch/v1\nkind: Job\nmetadata:\n  name: on-dask\nspec:\n  completions: 2\n"
        "  completionMode: Indexed\n  template:\n    spec:\n      restartPolicy: Never\n      containers:\n"
        "      - name: c\n        command: ['sh', '-c', 'echo at $JOB_COMPLETION_INDEX']\n"
    )
    host_port = cluster.address.removeprefix("tcp://")
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "kjob.cli",
            "run",
            "-f",
            str(manifest),
            "--executor",
            f"dask://{host_port}",
            "--logs",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        stdin=subprocess.DEVNULL,
    )
    assert out.returncode == 0, out.stderr
    lines = sorted(line.split("] ", 1)[1] for line in out.stdout.splitlines() if line.startswith("[on-dask-"))
    assert lines == ["at 0", "at 1"]
    bad = subprocess.run(
        [sys.executable, "-m", "kjob.cli", "run", "-f", str(manifest), "--executor", "ray://x"],
        capture_output=True,
        text=True,
        timeout=60,
        stdin=subprocess.DEVNULL,
    )
    assert bad.returncode == 2
    assert "--executor ray://x: unsupported; the form is dask://HOST:PORT" in bad.stderr


def test_without_distributed_the_error_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "distributed", None)
    with pytest.raises(ImportError, match=r"pip install 'kjob\[dask\]'"):
        kjob.DaskExecutor("tcp://127.0.0.1:1")


def test_an_executor_is_checked_and_fixed_once_the_job_starts(executor: kjob.DaskExecutor) -> None:
    job = kjob.Job(command=["true"])
    with pytest.raises(TypeError, match="executor must be a kjob.DaskExecutor or None, not str"):
        job.executor = "dask://x"  # type: ignore[assignment]
    job.executor = executor
    job.run(timeout=60)
    with pytest.raises(kjob.KjobError, match="has already been started"):
        job.executor = None
    job.delete()


def test_a_retired_worker_loses_its_pods(own_cluster: Cluster) -> None:
    job = disrupted_job(own_cluster, "exec sleep 60", pods=2, indexed=True)
    victim = sorted(own_cluster.worker_pids())[0]
    on_victim = [p.name for p in job.pods() if p.node_name == victim]
    assert len(on_victim) == 1
    own_cluster.client.retire_workers([victim], close_workers=False, remove=True)
    deadline = time.monotonic() + 20
    while (pod := next(p for p in job.pods() if p.name == on_victim[0])).phase != "Failed":
        assert time.monotonic() < deadline
        time.sleep(0.02)
    assert [(c.type, c.reason) for c in pod.conditions] == [("DisruptionTarget", "DeletionByPodGC")]
    job.delete()
    assert not no_pids_left(job.uid)


class FakeNative:
    """Stands for the Job: running for `steps` watch intervals."""

    def __init__(self, steps: int) -> None:
        self.steps = steps

    def wait(self, timeout: float | None = None) -> bool:
        self.steps -= 1
        return self.steps < 0


class FakeNodes:
    def __init__(self) -> None:
        self.calls: list[tuple[str, str]] = []

    def lose(self, node: str) -> bool:
        self.calls.append(("lose", node))
        return True

    def fail(self, reason: str) -> None:
        self.calls.append(("fail", reason))


class FakeClient:
    """What the watcher reads of a client: its status and the scheduler's workers, in turn."""

    def __init__(self, answers: list[tuple[str, set[str]]]) -> None:
        self.answers = answers
        self.scheduler = type("Rpc", (), {"address": "tcp://127.0.0.1:8786"})()

    @property
    def status(self) -> str:
        return self.answers[0][0]

    def scheduler_info(self, n_workers: int = 0) -> dict[str, Any]:
        workers = self.answers.pop(0)[1]
        return {"workers": {w: {} for w in workers}}


def test_the_watcher_gives_up_removed_workers_then_every_node_when_the_scheduler_goes(
    executor: kjob.DaskExecutor, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake = FakeClient(
        [("running", {"a", "b"}), ("running", {"b"}), ("running", {"b"}), ("connecting", set())]
    )
    monkeypatch.setattr(executor, "_client", fake)
    nodes = FakeNodes()
    executor._watch(FakeNative(steps=10), nodes, {"a", "b"})  # type: ignore[arg-type]
    assert nodes.calls == [
        ("lose", "a"),
        ("fail", "the Dask scheduler at tcp://127.0.0.1:8786 went away (client connecting)"),
    ]
