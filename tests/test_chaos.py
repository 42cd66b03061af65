"""Chaos: random Job shapes ended by a random kill path at a random moment, then a scan of
/proc for anything left behind. CI runs one round per kill path; `benches/chaos.py` runs the
same rounds by the thousand (`python benches/chaos.py --rounds 1000`)."""

from __future__ import annotations

import os
import random
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from conftest import pids_of_job

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
    'parallelism=2, termination_grace_period_seconds=1)',
    # pods that ignore SIGTERM
    'kjob.Job(name="chaos", command="trap \'\' TERM; sleep 300", parallelism=2, '
    'termination_grace_period_seconds=1)',
    # callable pods that start children of their own
    'kjob.Job(name="chaos", target=stuck, completions=4, parallelism=4, completion_mode="Indexed", '
    "max_workers=2, termination_grace_period_seconds=1)",
    # short pods being created and replaced while we kill
    'kjob.Job(name="chaos", command="exit 1", completions=50, parallelism=4, backoff_limit=1000, '
    "backoff_initial_seconds=0.001)",
    # quick callable pods queued ahead in their workers (reports batched), one now and then slow
    'kjob.Job(name="chaos", target=quick, completions=20000, parallelism=20000, completion_mode="Indexed", '
    "max_workers=2, termination_grace_period_seconds=1)",
]


def child_program(shape: str, path: str, delay: float) -> str:
    action = KILL_PATHS[path]
    body = f"job.start()\nprint(job.uid, flush=True)\ntime.sleep({delay})\n"
    if action is None:
        body = "with job:\n" + textwrap.indent(body + "raise RuntimeError('boom')\n", "    ")
    else:
        body += action + "\n"
    return textwrap.dedent(
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

        job = {shape}
        """
    ).format(shape=shape) + body


def run_round(rng: random.Random, path: str) -> tuple[str, list[int]]:
    shape = rng.choice(SHAPES)
    delay = rng.uniform(0.0, 0.3)
    program = child_program(shape, path, delay)
    with subprocess.Popen([sys.executable, "-c", program], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                          text=True) as proc:
        assert proc.stdout is not None
        uid = proc.stdout.readline().strip()
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()  # a hung owner is a failure, reported below, not a hung test
            raise
    deadline = time.monotonic() + 10
    while pids_of_job(uid) and time.monotonic() < deadline:
        time.sleep(0.02)
    return uid, pids_of_job(uid)


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
    uid, left = run_round(rng, path)
    assert uid, "the child printed no Job uid"
    assert left == [], f"{path}: processes of Job {uid} survived: {left}"
    assert zombies_of(os.getpid()) == []
