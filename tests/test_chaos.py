"""Chaos: random Job shapes ended by a random kill path at a random moment, then a scan of
/proc for anything left behind. CI runs one round per kill path; `benches/chaos.py` runs the
same rounds by the thousand (`python benches/chaos.py --rounds 1000`).

Besides the kill paths, hostile hosts (issue "hostile host process"): a host that ignores
SIGCHLD, a host that forks (`os.fork`, a `multiprocessing` fork pool) while its Job runs, and
nested Jobs (a callable pod running a Job of its own). Each round counts wrong statuses,
leaked processes (any process of the round still alive: every one carries the round's
``CHAOS_ROUND`` variable, shepherds and nested Jobs' pods included) and leaked files (anything
left in the round's own TMPDIR, and the host's worker slot files in /dev/shm)."""

from __future__ import annotations

import dataclasses
import os
import random
import subprocess
import sys
import tempfile
import textwrap
import time
import uuid
from pathlib import Path

import pytest

from conftest import pids_of_job, pids_with_variable

# Each path ends the Job's owner in its own way; the child interpreter prints the Job uid first.
KILL_PATHS = {
    "delete": "job.delete()",
    "with-exception": None,  # the whole body runs inside `with job:` and raises
    "garbage-collected": "del job; import gc; gc.collect(); time.sleep(0.5)",
    "sys-exit": "sys.exit(3)",
    "sigterm": "os.kill(os.getpid(), signal.SIGTERM)",
    "sigkill": "os.kill(os.getpid(), signal.SIGKILL)",
    "ctrl-c-in-wait": "signal.setitimer(signal.ITIMER_REAL, 0.05); signal.signal(signal.SIGALRM, "
    "lambda *a: os.kill(os.getpid(), signal.SIGINT)); job.wait()",
}

SHAPES = [
    # command pods with a grandchild in the group and one that escaped with setsid
    'kjob.Job(name="chaos", command="sleep 300 & setsid sleep 300 & sleep 300", completions=3, '
    "parallelism=2, termination_grace_period_seconds=1)",
    # pods that ignore SIGTERM
    'kjob.Job(name="chaos", command="trap \'\' TERM; sleep 300", parallelism=2, '
    "termination_grace_period_seconds=1)",
    # callable pods that start children of their own
    'kjob.Job(name="chaos", target=stuck, completions=4, parallelism=4, completion_mode="Indexed", '
    "max_workers=2, termination_grace_period_seconds=1)",
    # short pods being created and replaced while we kill
    'kjob.Job(name="chaos", command="exit 1", completions=50, parallelism=4, backoff_limit=1000, '
    "backoff_initial_seconds=0.001)",
    # quick callable pods queued ahead in their workers (reports batched), one now and then slow
    'kjob.Job(name="chaos", target=quick, completions=20000, parallelism=20000, completion_mode="Indexed", '
    "max_workers=2, termination_grace_period_seconds=1)",
    # callable pods running Jobs of their own (nested Jobs), whose pods escape with setsid
    'kjob.Job(name="chaos", target=nested, completions=2, parallelism=2, completion_mode="Indexed", '
    "max_workers=2, termination_grace_period_seconds=1)",
]


def child_program(shape: str, path: str, delay: float) -> str:
    action = KILL_PATHS[path]
    body = f"job.start()\nprint(job.uid, flush=True)\ntime.sleep({delay})\n"
    if action is None:
        body = "with job:\n" + textwrap.indent(body + "raise RuntimeError('boom')\n", "    ")
    else:
        body += action + "\n"
    return (
        textwrap.dedent(
            """
        import os, signal, subprocess, sys, time
        import kjob

        # A shell starting us in the background may have SIGINT ignored; Ctrl-C must work here.
        signal.signal(signal.SIGINT, signal.default_int_handler)

        def stuck(i):
            subprocess.Popen(["sleep", "300"])
            time.sleep(300)

        def quick(i):
            if i % 500 == 499:
                time.sleep(0.05)
            return i

        def nested(i):
            inner = kjob.Job(name="inner", command="sleep 300 & setsid sleep 300 & sleep 300",
                             parallelism=2, termination_grace_period_seconds=1)
            inner.start()
            inner.wait()

        job = {shape}
        """
        ).format(shape=shape)
        + body
    )


@dataclasses.dataclass
class Round:
    """What one round left behind."""

    name: str
    uid: str
    #: Processes of the round still alive after it.
    left: list[int]
    #: Files of the round still there after it.
    files: list[str]
    #: Why the host's Job ended with the wrong status (None when right or not checked).
    wrong: str | None = None


def round_processes(mark: str) -> list[int]:
    """Live processes carrying ``CHAOS_ROUND=<mark>``."""
    return pids_with_variable("CHAOS_ROUND", mark)


def run_host(name: str, program: str, expect: tuple[str, ...] = ()) -> Round:
    """Runs `program` as the host interpreter. It prints its Job's uid first; its other output
    must hold every line of `expect`."""
    with tempfile.TemporaryDirectory(prefix="chaos-") as tmp:
        mark = uuid.uuid4().hex
        env = {**os.environ, "TMPDIR": tmp, "CHAOS_ROUND": mark}
        with subprocess.Popen(
            [sys.executable, "-c", program],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
            env=env,
        ) as proc:
            assert proc.stdout is not None
            uid = proc.stdout.readline().strip()
            try:
                proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                proc.kill()  # a hung owner is a failure, reported below, not a hung test
                raise
            rest = proc.stdout.read().splitlines()
        missing = [line for line in expect if line not in rest]
        wrong = f"expected {missing!r}, got {rest!r}" if missing else None

        def leftovers() -> tuple[list[int], list[str]]:
            pids = sorted(set(pids_of_job(uid) if uid else []) | set(round_processes(mark)))
            files = sorted(os.listdir(tmp))
            files += sorted(str(p) for p in Path("/dev/shm").glob(f"kjob-slot-{proc.pid}-*"))
            return pids, files

        deadline = time.monotonic() + 10
        while any(leftovers()) and time.monotonic() < deadline:
            time.sleep(0.02)
        left, files = leftovers()
        return Round(name, uid, left, files, wrong)


def run_round(rng: random.Random, path: str) -> Round:
    shape = rng.choice(SHAPES)
    delay = rng.uniform(0.0, 0.3)
    return run_host(path, child_program(shape, path, delay))


# ---- hostile hosts ---------------------------------------------------------------------------

SIGCHLD_IGNORED = """
import signal, kjob
# Ignoring SIGCHLD makes the kernel reap children itself: exit statuses must still be right.
signal.signal(signal.SIGCHLD, signal.SIG_IGN)
def square(i):
    return i * i
job = kjob.Job(name="chaos", command="exit $((JOB_COMPLETION_INDEX % 2))", completions=6, parallelism=3,
               completion_mode="Indexed", backoff_limit_per_index=0, backoff_limit=100)
print(job.uid, flush=True)
s = job.run(timeout=30)
print("command", s.succeeded, s.failed, s.failed_indexes, sorted(p.exit_code for p in job.pods()))
job.delete()
fn = kjob.Job(name="chaos-fn", target=square, completions=4, parallelism=2, completion_mode="Indexed")
s = fn.run(timeout=30)
print("callable", s.succeeded, s.failed, sorted(fn.results().items()))
fn.delete()
"""
SIGCHLD_EXPECT = ("command 3 3 1,3,5 [0, 0, 0, 1, 1, 1]", "callable 4 0 [(0, 0), (1, 1), (2, 4), (3, 9)]")

# What a forked child of the host does while the host's Job runs.
FORK_ACTIONS = {
    # exits normally: atexit hooks and finalizers run in the child
    "exit": "sys.exit(0)",
    # runs a Job of its own
    # (generated names: a name is taken until its Job is deleted, and children run at once)
    "own-job": "ok = kjob.Job(command='true', completions=2).run(timeout=20).succeeded == 2\n"
    "os._exit(0 if ok else 1)",
    # starts a Job of long pods and leaves at once: its own shepherd cleans up
    "leave-own-job": "kjob.Job(command='sleep 300', parallelism=2).start()\nos._exit(0)",
    # touches the parent's Job: a clear error
    "use-parents-job": "try:\n    job.status\nexcept kjob.KjobError:\n    os._exit(0)\nos._exit(1)",
}

FORKING = """
import multiprocessing, os, sys, time, kjob
def pool_job(i):
    return kjob.Job(command="true", completions=2).run(timeout=20).succeeded
job = kjob.Job(name="chaos", {shape}, completions=4, parallelism=2, backoff_limit=0)
job.start()
print(job.uid, flush=True)
time.sleep({delay})
codes = []
for action in {actions!r}:
    if action == "pool":
        with multiprocessing.get_context("fork").Pool(2) as pool:
            codes.append(0 if pool.map(pool_job, range(3)) == [2, 2, 2] else 1)
        continue
    pid = os.fork()
    if pid == 0:
        exec(ACTIONS[action])
        os._exit(0)
    codes.append(os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]))
s = job.wait(timeout=30)
print("children", codes)
print("parent", s.succeeded, s.failed, {callable})
job.delete()
"""


def forking_program(rng: random.Random) -> tuple[str, tuple[str, ...]]:
    actions = [rng.choice([*sorted(FORK_ACTIONS), "pool"]) for _ in range(rng.randint(1, 3))]
    callable_pods = rng.random() < 0.5
    shape = "target=time.sleep, args=(0.4,)" if callable_pods else 'command="sleep 0.4"'
    program = (
        "ACTIONS = "
        + repr(FORK_ACTIONS)
        + "\n"
        + FORKING.format(
            shape=shape,
            delay=rng.uniform(0.0, 0.2),
            actions=actions,
            callable="job.results()" if callable_pods else "[]",
        )
    )
    results = [None] * 4 if callable_pods else []
    return program, (f"children {[0] * len(actions)}", f"parent 4 0 {results}")


def run_hostile(rng: random.Random, name: str) -> Round:
    """One round of a hostile host: "sigchld-ignored", "forking" or "nested"."""
    if name == "sigchld-ignored":
        return run_host(name, SIGCHLD_IGNORED, SIGCHLD_EXPECT)
    if name == "forking":
        program, expect = forking_program(rng)
        return run_host(name, program, expect)
    shape = SHAPES[-1]  # nested Jobs, ended by a random kill path
    path = rng.choice(sorted(KILL_PATHS))
    return run_host(name, child_program(shape, path, rng.uniform(0.3, 1.5)))


HOSTILE = ("forking", "nested", "sigchld-ignored")


def zombies_of(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if fields[0] == "Z" and int(fields[1]) == pid:
            found.append(int(entry.name))
    return found


@pytest.mark.parametrize("path", sorted(KILL_PATHS))
def test_no_process_survives_a_kill_path(path: str) -> None:
    rng = random.Random(f"kjob-chaos-{path}")
    r = run_round(rng, path)
    assert r.uid, "the child printed no Job uid"
    assert r.left == [], f"{path}: processes of Job {r.uid} survived: {r.left}"
    assert r.files == [], f"{path}: files of Job {r.uid} left: {r.files}"
    assert zombies_of(os.getpid()) == []


@pytest.mark.parametrize(
    "name",
    [
        "forking",
        "nested",
        "sigchld-ignored",
    ],
)
def test_hostile_host_gets_right_statuses_and_leaves_nothing(name: str) -> None:
    rng = random.Random(f"kjob-chaos-{name}")
    r = run_hostile(rng, name)
    assert r.uid, "the host printed no Job uid"
    assert r.wrong is None, f"{name}: {r.wrong}"
    assert r.left == [], f"{name}: processes of Job {r.uid} survived: {r.left}"
    assert r.files == [], f"{name}: files of Job {r.uid} left: {r.files}"
    assert zombies_of(os.getpid()) == []
