"""Python callables as pods: results, exceptions, exit codes, worker deaths, kills and logs."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import pytest

import kjob
from conftest import no_pids_left


def square(i: int) -> int:
    return i * i


def test_indexed_results_map_and_prints_in_logs() -> None:
    def work(i: int, offset: int, *, scale: int) -> int:
        print(f"working on {i}")
        return (i + offset) * scale

    job = kjob.Job(
        target=work,
        args=(1,),
        kwargs={"scale": 10},
        completions=6,
        parallelism=6,
        completion_mode="Indexed",
        max_workers=2,
    )
    status = job.run(timeout=60)
    assert (status.succeeded, status.completed_indexes) == (6, "0-5")
    assert job.results() == {i: (i + 1) * 10 for i in range(6)}
    for i in range(6):
        assert job.logs(index=i) == f"working on {i}\n"
    assert {p.phase for p in job.pods()} == {"Succeeded"}
    job.delete()


def test_non_indexed_results_are_a_list_in_completion_order() -> None:
    job = kjob.Job(target=lambda: "done", completions=3, parallelism=1)
    job.run(timeout=60)
    assert job.results() == ["done", "done", "done"]
    with pytest.raises(kjob.KjobError, match="results\\(\\) needs a target callable"):
        kjob.Job(command="true").results()


def test_exception_fails_the_pod_with_its_traceback() -> None:
    def boom(i: int) -> None:
        raise ValueError(f"bad input {i}")

    job = kjob.Job(target=boom, completions=1, completion_mode="Indexed", backoff_limit=0)
    status = job.run(timeout=60)
    assert status.is_failed
    [pod] = job.pods()
    assert (pod.phase, pod.exit_code, pod.exception) == ("Failed", 1, "ValueError: bad input 0")
    log = job.logs(index=0)
    assert log.startswith("Traceback (most recent call last):")
    assert "_worker.py" not in log, "the worker's own frame is not shown"
    assert log.rstrip().endswith("ValueError: bad input 0")
    assert job.results(partial=True) == {}


@pytest.mark.parametrize(
    ("code", "want"),
    [
        ("sys.exit(3)", 3),
        ("os._exit(5)", 5),
        ("os.kill(os.getpid(), signal.SIGKILL)", 137),
        ("sys.exit(0)", 0),
    ],
)
def test_exit_codes_of_callable_pods(code: str, want: int) -> None:
    def die() -> None:
        import os  # noqa: F401
        import signal  # noqa: F401
        import sys  # noqa: F401

        exec(code)

    job = kjob.Job(target=die, backoff_limit=0)
    job.run(timeout=60)
    [pod] = job.pods()
    assert pod.exit_code == want
    assert pod.phase == ("Succeeded" if want == 0 else "Failed")


def test_a_dead_worker_is_replaced_and_the_job_goes_on() -> None:
    def maybe_die(i: int) -> int:
        if i == 1:
            os.kill(os.getpid(), signal.SIGKILL)
        return i

    job = kjob.Job(
        target=maybe_die,
        completions=4,
        parallelism=1,
        completion_mode="Indexed",
        max_workers=1,
        backoff_limit_per_index=0,
    )
    status = job.run(timeout=60)
    assert (status.completed_indexes, status.failed_indexes) == ("0,2,3", "1")
    assert job.results(partial=True) == {0: 0, 2: 2, 3: 3}
    assert [p.exit_code for p in job.pods() if p.index == 1] == [137]


def test_backoff_limit_with_attempts_from_pod_context() -> None:
    def flaky(i: int) -> str:
        ctx = kjob.pod_context()
        if ctx.attempt < 2:
            raise RuntimeError(f"attempt {ctx.attempt} of index {ctx.index}")
        return f"{ctx.job_name}/{ctx.index}/{ctx.attempt}/{os.environ['JOB_COMPLETION_INDEX']}"

    job = kjob.Job(
        name="flaky",
        target=flaky,
        completions=2,
        parallelism=2,
        completion_mode="Indexed",
        backoff_limit=4,
        backoff_initial_seconds=0.01,
    )
    status = job.run(timeout=60)
    assert (status.succeeded, status.failed) == (2, 4)
    assert job.results() == {0: "flaky/0/2/0", 1: "flaky/1/2/1"}
    with pytest.raises(kjob.KjobError, match="only available inside a pod"):
        kjob.pod_context()


def test_completion_index_reaches_subprocesses_threads_and_is_unset_for_non_indexed_pods() -> None:
    # JOB_COMPLETION_INDEX is in the C environment (a subprocess sees it), and pod_context()
    # answers in threads the pod starts. One worker runs both Jobs, so the NonIndexed pods
    # prove the Indexed Job's variable is gone.
    def probe(*index: int) -> tuple[str, str | None, int | None]:
        import threading

        seen: list[int | None] = []
        thread = threading.Thread(target=lambda: seen.append(kjob.pod_context().index))
        thread.start()
        thread.join()
        child = subprocess.run(
            [sys.executable, "-c", "import os; print(os.environ.get('JOB_COMPLETION_INDEX'))"],
            capture_output=True,
            text=True,
            check=True,
        )
        seen_here = os.environ.get("JOB_COMPLETION_INDEX")
        # Pods may change or remove the variable; the next pod still gets its own.
        if index == (1,):
            os.environ["JOB_COMPLETION_INDEX"] = "changed by the pod"
        elif index == (2,):
            del os.environ["JOB_COMPLETION_INDEX"]
        return child.stdout.strip(), seen_here, seen[0]

    indexed = kjob.Job(target=probe, completions=4, parallelism=1, completion_mode="Indexed", max_workers=1)
    assert indexed.run(timeout=60).succeeded == 4
    assert indexed.results() == {i: (str(i), str(i), i) for i in range(4)}
    plain = kjob.Job(target=probe, completions=2, parallelism=1, max_workers=1)
    assert plain.run(timeout=60).succeeded == 2
    assert plain.results() == [("None", None, None)] * 2
    indexed.delete()
    plain.delete()


def test_on_exceptions_fail_job() -> None:
    class Fatal(Exception):
        pass

    def work(i: int) -> None:
        raise Fatal("stop everything") if i == 0 else ValueError("retry me")

    job = kjob.Job(
        name="exc",
        target=work,
        completions=1,
        completion_mode="Indexed",
        backoff_limit=5,
        pod_failure_policy={
            "rules": [{"action": "FailJob", "onExceptions": {"operator": "In", "values": ["Fatal"]}}]
        },
    )
    status = job.run(timeout=60)
    [pod] = job.pods()
    message = (
        f"Pod default/{pod.name} failed with exception {pod.exception.split(':')[0] if pod.exception else ''}"
    )
    assert status.conditions[-1].reason == "PodFailurePolicy"
    assert status.conditions[-1].message.startswith(message)
    assert status.conditions[-1].message.endswith("matching FailJob rule at index 0")
    assert status.failed == 1


@pytest.mark.parametrize("how", ["deadline", "suspend", "delete"])
def test_stuck_pod_is_killed_with_its_worker(how: str, tmp_path: Path) -> None:
    entered = tmp_path / "entered"

    def stuck() -> None:
        entered.touch()
        time.sleep(3600)

    job = kjob.Job(
        target=stuck,
        termination_grace_period_seconds=1,
        backoff_limit=0,
        active_deadline_seconds=1 if how == "deadline" else None,
    )
    job.start()
    deadline = time.monotonic() + 30
    # Running from the moment a worker with nothing else to do got it; in the function once
    # the marker exists.
    while not (job.pods() and job.pods()[0].phase == "Running" and entered.exists()):
        assert time.monotonic() < deadline
        time.sleep(0.01)
    worker_pids = [p.pid for p in job.pods() if p.pid is not None]
    assert len(worker_pids) == 1
    if how == "deadline":
        status = job.wait(timeout=30)
        assert status.conditions[-1].reason == "DeadlineExceeded"
    elif how == "suspend":
        job.suspend()
        while job.status.terminating or job.status.active:
            assert time.monotonic() < deadline
            time.sleep(0.01)
    job.delete(timeout=30)
    assert all(not _alive(pid) for pid in worker_pids)


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def test_unpicklable_target_raises_at_start() -> None:
    import threading

    lock = threading.Lock()
    job = kjob.Job(target=lambda: lock.locked())
    with pytest.raises(TypeError, match="cannot pickle the Job's target"):
        job.start()
    assert job.pods() == []


def test_main_script_function_and_lambda(tmp_path: Path) -> None:
    script = tmp_path / "script.py"
    script.write_text(
        textwrap.dedent(
            """
        import kjob

        def triple(i):
            return 3 * i

        if __name__ == "__main__":
            a = kjob.Job(target=triple, completions=3, parallelism=3, completion_mode="Indexed").run(timeout=60)
            j = kjob.Job(target=triple, completions=3, parallelism=3, completion_mode="Indexed")
            j.run(timeout=60)
            k = kjob.Job(target=lambda i: i - 1, completions=2, completion_mode="Indexed")
            k.run(timeout=60)
            print(sorted(j.results().items()), sorted(k.results().items()))
        """
        )
    )
    out = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, timeout=120, cwd=tmp_path
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[(0, 0), (1, 3), (2, 6)] [(0, -1), (1, 0)]"


def test_max_workers_caps_running_pods_and_the_rest_are_pending() -> None:
    def nap(i: int) -> int:
        time.sleep(0.3)
        return i

    job = kjob.Job(target=nap, completions=6, parallelism=6, completion_mode="Indexed", max_workers=2)
    job.start()
    deadline = time.monotonic() + 30
    while sum(p.phase == "Running" for p in job.pods()) < 2:
        assert time.monotonic() < deadline
        time.sleep(0.01)
    phases = [p.phase for p in job.pods()]
    assert phases.count("Running") == 2 and phases.count("Pending") == 4
    assert job.status.active == 6
    status = job.wait(timeout=60)
    assert status.succeeded == 6


def test_callable_and_command_are_exclusive() -> None:
    with pytest.raises(ValueError, match="either a command or a target"):
        kjob.Job(target=square, command="true")
    with pytest.raises(TypeError, match="target must be callable"):
        kjob.Job(target=42)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="max_workers must be a positive int"):
        kjob.Job(target=square, max_workers=0)


def test_returned_objects_cross_by_pickle() -> None:
    def make(i: int) -> dict[str, Any]:
        return {"i": i, "data": bytes(range(i)), "nested": [i, (i, None)]}

    job = kjob.Job(target=make, completions=3, parallelism=3, completion_mode="Indexed")
    job.run(timeout=60)
    assert job.results() == {i: make(i) for i in range(3)}
    assert no_pids_left(job.uid) == []


def test_worker_death_fails_exactly_the_pod_it_was_running() -> None:
    """Quick pods' reports are batched in the worker; when it dies, the slot it shares with
    kjob names the pod it was running: only that pod fails (with the worker's exit code).
    Pods that ended with their reports still in the worker run again."""

    def crash_once_at_50(i: int) -> int:
        if i == 50 and kjob.pod_context().attempt == 0:
            os._exit(3)
        return i

    job = kjob.Job(
        target=crash_once_at_50,
        completions=200,
        parallelism=200,
        completion_mode="Indexed",
        max_workers=1,
        backoff_limit=1,
        backoff_initial_seconds=0.01,
    )
    status = job.run(timeout=60)
    assert status.is_complete and status.failed == 1
    [failed] = [p for p in job.pods() if p.phase == "Failed"]
    assert (failed.index, failed.exit_code) == (50, 3)
    assert job.results() == {i: i for i in range(200)}
    succeeded = sorted(p.index for p in job.pods() if p.phase == "Succeeded" and p.index is not None)
    assert succeeded == list(range(200)), "one succeeded pod per index"
    job.delete()


class SlowToLoad:
    """A target whose unpickling in the worker takes a while, then a pod that never ends."""

    def __setstate__(self, state: dict[str, Any]) -> None:
        time.sleep(0.3)
        self.__dict__.update(state)

    def __call__(self, i: int) -> None:
        time.sleep(300)


def test_delete_while_a_worker_is_still_loading_the_function_does_not_hang() -> None:
    # The cancels for both pods reach the worker while it unpickles the target: it must see
    # them before running the first pod, or (if it ran one anyway) be killed for it.
    job = kjob.Job(
        target=SlowToLoad(),
        completions=2,
        parallelism=2,
        completion_mode="Indexed",
        max_workers=1,
        termination_grace_period_seconds=1,
    )
    job.start()
    time.sleep(0.05)
    job.delete(timeout=20)  # raises TimeoutError if a pod is left running
    assert job.is_deleted
    assert no_pids_left(job.uid) == []


def test_a_large_function_reaches_the_worker_whole() -> None:
    # A 3 MB closure arrives in many pipe reads; every byte must make it, once.
    blob = os.urandom(3_000_000)

    def checksum(i: int) -> tuple[int, int]:
        return i, sum(blob[::4096])

    job = kjob.Job(target=checksum, completions=4, parallelism=4, completion_mode="Indexed", max_workers=2)
    assert job.run(timeout=60).succeeded == 4
    assert job.results() == {i: (i, sum(blob[::4096])) for i in range(4)}
    job.delete()


def test_slot_files_do_not_outlive_their_workers() -> None:
    job = kjob.Job(target=square, completions=20, parallelism=20, completion_mode="Indexed", max_workers=2)
    job.run(timeout=60)
    job.delete()
    # Workers remove their slot's name as soon as they have mapped it.
    assert list(Path("/dev/shm").glob(f"kjob-slot-{os.getpid()}-*")) == []


def test_suspend_and_resume_while_quick_pods_are_queued_in_workers(tmp_path: Path) -> None:
    """Pods queued ahead in workers are cancelled by a suspend (or killed with their worker if
    one had started); after resume every index completes exactly once."""

    # Indexes from 1000 on wait for a gate (opened before the resume), so the suspend
    # always finds both workers busy with pods queued behind them, however fast they are.
    def gated_square(i: int, gate: str) -> int:
        while i >= 1000 and not os.path.exists(gate):
            time.sleep(0.001)
        return i * i

    gate = tmp_path / "gate"
    job = kjob.Job(
        target=gated_square,
        args=(str(gate),),
        completions=5000,
        parallelism=5000,
        completion_mode="Indexed",
        max_workers=2,
        termination_grace_period_seconds=1,
    )
    job.start()
    deadline = time.monotonic() + 30
    while job.status.succeeded < 500:
        assert time.monotonic() < deadline
        time.sleep(0.005)
    job.suspend()
    while job.status.active or job.status.terminating:
        assert time.monotonic() < deadline
        time.sleep(0.01)
    suspended = job.status
    assert suspended.condition("Suspended") is not None
    assert suspended.succeeded <= 1000
    gate.touch()
    job.resume()
    status = job.wait(timeout=60)
    assert status.is_complete and status.succeeded == 5000 and status.failed == 0
    assert job.results() == {i: i * i for i in range(5000)}
    job.delete()
