"""kjob's pytest plugin (issue 17 §1), run as a user runs it: inner pytest sessions
(``pytester``) whose tests use the fixtures, found through the ``pytest11`` entry point (no
``pytest_plugins`` line in the inner tests), with real pods."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from conftest import no_pids_left, pids_of_job
from kjob._config import default_backoff
from kjob.pytest_plugin import outlived

pytest_plugins = ["pytester"]


def test_the_entry_point_registers_the_plugin(pytester: pytest.Pytester) -> None:
    result = pytester.runpytest("--fixtures")
    result.stdout.re_match_lines([r"kjob_home \[session scope\] -- .*/kjob/pytest_plugin.py:\d+"])
    result.stdout.re_match_lines([r"kjob_job -- .*/kjob/pytest_plugin.py:\d+"])
    result = pytester.runpytest("--help")
    result.stdout.fnmatch_lines(["kjob:", "  --kjob-backoff=SECONDS*", "  kjob_backoff (string):*"])


def test_factory_jobs_are_deleted_with_their_pods_at_teardown(
    pytester: pytest.Pytester, tmp_path: Path
) -> None:
    pytester.makepyfile(
        f"""
        import json, time, kjob, yaml

        made = []
        DOC = '''
        apiVersion: batch/v1
        kind: Job
        metadata: {{name: NAME}}
        spec:
          template:
            spec:
              restartPolicy: Never
              containers: [{{name: c, command: [sleep, "60"]}}]
        '''

        def test_makes_jobs(kjob_job, tmp_path):
            running = kjob_job(name="sleepy", command=["sleep", "60"], parallelism=2, completions=2)
            running.start()
            never_started = kjob_job(command=["true"])
            from_yaml = kjob_job.from_yaml(DOC.replace("NAME", "from-yaml"))
            from_yaml.start()
            from_manifest = kjob_job.from_manifest(yaml.safe_load(DOC.replace("NAME", "from-manifest")))
            both = kjob_job.all_from_yaml(DOC.replace("NAME", "a") + "---" + DOC.replace("NAME", "b"))
            assert isinstance(running, kjob.Job)
            assert kjob_job.jobs == [running, never_started, from_yaml, from_manifest, *both]
            assert [job.name for job in both] == ["a", "b"]
            while running.status.active < 2 or from_yaml.status.active < 1:
                time.sleep(0.01)
            made.extend(kjob_job.jobs)
            pids = [p.pid for job in (running, from_yaml) for p in job.pods()]
            with open({str(tmp_path / "made.json")!r}, "w") as f:
                json.dump({{"uids": [running.uid, from_yaml.uid], "pids": pids}}, f)

        def test_the_jobs_of_the_first_test_are_deleted():
            assert [job.is_deleted for job in made] == [True] * 6
        """
    )
    result = pytester.runpytest("-p", "no:cacheprovider")
    result.assert_outcomes(passed=2)
    import json

    made = json.loads((tmp_path / "made.json").read_text())
    assert len(made["pids"]) == 3
    assert [_start_time(pid) for pid in made["pids"]] == [-1, -1, -1]
    assert [no_pids_left(uid, timeout=0) for uid in made["uids"]] == [[], []]


# A pod that starts two processes which leave its process group and drop the environment that
# marks them as the Job's (setsid, env -i): kjob's delete kills the pod's group and sweeps the
# marked processes, so these two survive it. The plugin knows them as descendants of the pod.
ESCAPING_POD = (
    "setsid env -i sleep 60 & echo $! > {dir}/p1; setsid env -i sleep 60 & echo $! > {dir}/p2; "
    "touch {dir}/ready; sleep 60"
)


def test_teardown_fails_the_test_when_pod_processes_outlive_the_delete(
    pytester: pytest.Pytester, tmp_path: Path
) -> None:
    pytester.makepyfile(
        f"""
        import os, pathlib, time

        def test_leaks(kjob_job):
            job = kjob_job(name="x", command={ESCAPING_POD.format(dir=tmp_path)!r})
            job.start()
            while not os.path.exists({str(tmp_path / "ready")!r}):
                time.sleep(0.01)
            # Both have become `sleep 60` (setsid and env exec it).
            for name in ("p1", "p2"):
                with open(os.path.join({str(tmp_path)!r}, name)) as f:
                    cmdline = "/proc/" + f.read().strip() + "/cmdline"
                while pathlib.Path(cmdline).read_bytes() != b"sleep\\x0060\\x00":
                    time.sleep(0.01)
        """
    )
    result = pytester.runpytest()
    result.assert_outcomes(passed=1, errors=1)
    escaped = sorted(int((tmp_path / name).read_text()) for name in ("p1", "p2"))
    result.stdout.fnmatch_lines(
        [
            "*ERROR at teardown of test_leaks*",
            "kjob: 2 pod processes of Job 'x' outlived it (SIGKILLed now):",
            f"  pid {escaped[0]}: sleep 60",
            f"  pid {escaped[1]}: sleep 60",
        ]
    )
    # ... and the plugin killed them: they do not leak into the rest of the session.
    assert outlived({(pid, _start_time(pid)) for pid in escaped}) == []


def _start_time(pid: int) -> int:
    """The start time of a process, or -1 once it is gone (then it matches no process)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_bytes()
    except OSError:
        return -1
    return int(stat[stat.rfind(b")") + 2 :].split()[19])


def test_processes_that_the_delete_reaches_are_no_leak(pytester: pytest.Pytester, tmp_path: Path) -> None:
    # A background child in the pod's group, a setsid daemon that keeps kjob's environment, a
    # callable pod finished (its worker process is kept for later Jobs) and one running (its
    # worker ends with the Job), and a finished command Job: none of them is reported.
    pytester.makepyfile(
        f"""
        import os, pathlib, time

        def work(index):
            return index * 2

        def nap():
            time.sleep(60)

        def test_no_leak(kjob_job):
            job = kjob_job(name="tidy", command="sleep 60 & setsid sleep 60 & touch {tmp_path}/ready; sleep 60")
            job.start()
            calls = kjob_job(target=work, completions=2, completion_mode="Indexed")
            assert calls.run(timeout=60).succeeded == 2
            done = kjob_job(command=["true"])
            assert done.run(timeout=60).succeeded == 1
            napping = kjob_job(target=nap)
            napping.start()
            while napping.status.active < 1:
                time.sleep(0.01)
            while not os.path.exists({str(tmp_path / "ready")!r}):
                time.sleep(0.01)
        """
    )
    result = pytester.runpytest()
    result.assert_outcomes(passed=1)
    assert "outlived" not in result.stdout.str()


def test_a_failed_test_reports_its_jobs_conditions_and_failed_pods(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        def boom(index):
            raise ValueError(f"bad input {index}")

        def test_fails(kjob_job):
            shell = kjob_job(
                name="shell",
                command="for i in $(seq 1 25); do echo line $i; done; exit 3",
                backoff_limit=0,
            )
            shell.run(timeout=60)
            calls = kjob_job(name="calls", target=boom, completions=1, completion_mode="Indexed", backoff_limit=0)
            calls.run(timeout=60)
            kjob_job(name="idle", command=["true"])
            assert False, "the test's own failure"

        def test_passes(kjob_job):
            assert kjob_job(name="fine", command=["true"]).run(timeout=60).succeeded == 1
        """
    )
    result = pytester.runpytest()
    result.assert_outcomes(passed=1, failed=1)
    out = result.stdout.str()
    assert "the test's own failure" in out
    section = out[out.index("- kjob -") :].splitlines()[1:]
    section = section[: section.index("=" * 27 + " short test summary info " + "=" * 28)]
    shell_pod, calls_pod = re.findall(r"pod ((?:shell|calls)-[-\w]+)", "\n".join(section))
    reason = "BackoffLimitExceeded: Job has reached the specified backoff limit"
    assert section == [
        "Job 'shell': Failed (active=0 succeeded=0 failed=1)",
        f"  FailureTarget=True {reason}",
        f"  Failed=True {reason}",
        f"  pod {shell_pod}: exit code 3; last 20 lines of its log:",
        *(f"      line {i}" for i in range(6, 26)),
        "",
        "Job 'calls': Failed (active=0 succeeded=0 failed=1)",
        f"  FailureTarget=True {reason}",
        f"  Failed=True {reason}",
        f"  pod {calls_pod} (index 0): exception ValueError: bad input 0; last 4 lines of its log:",
        "      Traceback (most recent call last):",
        f'        File "{pytester.path / "test_a_failed_test_reports_its_jobs_conditions_and_failed_pods.py"}", line 2, in boom',
        '          raise ValueError(f"bad input {index}")',
        "      ValueError: bad input 0",
        "",
        "Job 'idle': NotStarted (active=0 succeeded=0 failed=0)",
    ]
    # The passing test's Job appears nowhere.
    assert "'fine'" not in out


BACKOFF_TEST = """
    import time, kjob

    def test_replacement_delay(kjob_job):
        # One failure, then a replacement after the configured delay (Kubernetes': 10 s).
        job = kjob_job(command=["false"], backoff_limit=1)
        begin = time.monotonic()
        status = job.run(timeout=5)
        assert status.failed == 2 and status.is_failed
        assert time.monotonic() - begin < 5
        assert kjob._config.default_backoff()[0] == {expected}
    """


@pytest.mark.parametrize(
    ("args", "ini", "expected"),
    [
        (["--kjob-backoff", "0.05"], None, 0.05),
        ([], "0.02", 0.02),
        (["--kjob-backoff=0.01"], "0.5", 0.01),
    ],
    ids=["option", "ini", "option-over-ini"],
)
def test_kjob_backoff_sets_the_initial_replacement_delay(
    pytester: pytest.Pytester, args: list[str], ini: str | None, expected: float
) -> None:
    before = default_backoff()
    pytester.makepyfile(BACKOFF_TEST.format(expected=expected))
    if ini is not None:
        pytester.makeini(f"[pytest]\nkjob_backoff = {ini}\n")
    pytester.runpytest(*args).assert_outcomes(passed=1)
    # Restored with the inner session: the option changes the Jobs of its own session only.
    assert default_backoff() == before


def test_without_kjob_backoff_the_delay_is_kubernetes_10_s(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        import time, kjob

        def test_default(kjob_job):
            assert kjob._config.default_backoff() == (10.0, 600.0)
            job = kjob_job(command=["false"], backoff_limit=1)
            job.start()
            time.sleep(1)
            status = job.status
            assert (status.failed, status.active, status.is_finished) == (1, 0, False)
        """
    )
    pytester.runpytest().assert_outcomes(passed=1)


@pytest.mark.parametrize(
    ("args", "ini", "message"),
    [
        (["--kjob-backoff", "soon"], None, "--kjob-backoff: could not convert string to float: 'soon'"),
        (
            ["--kjob-backoff=-1"],
            "0.1",
            "--kjob-backoff: backoff_initial_seconds: must be a finite number of seconds >= 0, got -1.0",
        ),
        (
            [],
            "nan",
            "ini kjob_backoff: backoff_initial_seconds: must be a finite number of seconds >= 0, got nan",
        ),
    ],
    ids=["not-a-number", "negative", "ini-nan"],
)
def test_a_bad_kjob_backoff_is_a_usage_error(
    pytester: pytest.Pytester, args: list[str], ini: str | None, message: str
) -> None:
    before = default_backoff()
    if ini is not None:
        pytester.makeini(f"[pytest]\nkjob_backoff = {ini}\n")
    result = pytester.runpytest(*args)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert result.stderr.lines[0] == f"ERROR: {message}"
    assert default_backoff() == before


def test_kjob_home_is_one_private_folder_per_session(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        import os

        homes = []

        def test_first(kjob_home, kjob_job):
            assert kjob_home.is_dir() and list(kjob_home.iterdir()) == []
            assert os.environ["KJOB_HOME"] == str(kjob_home)
            job = kjob_job(command='echo "$KJOB_HOME"')
            job.run(timeout=60)
            assert job.logs() == str(kjob_home) + "\\n"
            homes.append(kjob_home)

        def test_second(kjob_home):
            assert [kjob_home] == homes
        """
    )
    before = os.environ.get("KJOB_HOME")
    pytester.runpytest().assert_outcomes(passed=2)
    assert os.environ.get("KJOB_HOME") == before


def test_it_works_under_xdist(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        import os
        import pytest
        import kjob

        @pytest.mark.parametrize("n", range(4))
        def test_runs_a_job(kjob_job, kjob_home, n):
            job = kjob_job(command=["sh", "-c", f"echo {n} $PYTEST_XDIST_WORKER"], completions=2, parallelism=2)
            assert job.run(timeout=60).succeeded == 2
            assert os.environ["KJOB_HOME"] == str(kjob_home)
            assert os.environ["PYTEST_XDIST_WORKER"] in str(kjob_home)
            # Each worker applied --kjob-backoff itself.
            assert kjob._config.default_backoff()[0] == 0.01

        def test_fails(kjob_job):
            kjob_job(name="under-xdist", command="echo from the pod; exit 4", backoff_limit=0).run(timeout=60)
            assert False
        """
    )
    result = pytester.runpytest_subprocess("-n", "2", "--kjob-backoff", "0.01")
    result.assert_outcomes(passed=4, failed=1)
    result.stdout.fnmatch_lines(
        [
            "*- kjob -*",
            "Job 'under-xdist': Failed (active=0 succeeded=0 failed=1)",
            "*",
            "*",
            "  pod under-xdist-*: exit code 4; last line of its log:",
            "      from the pod",
        ]
    )


def test_outlived_tells_a_reused_pid_from_the_process_it_recorded() -> None:
    me = os.getpid()
    assert outlived({(me, _start_time(me))}, timeout=0) == [me]
    assert outlived({(me, _start_time(me) + 1)}, timeout=0) == []
    assert pids_of_job("no-such-uid") == []
