"""``kjob.simulate`` and ``kjob simulate`` (issue 17 §3): the real controller on a virtual clock.

The last tests run the same spec for real, with pods that end as the same outcome table says
(a script reading ``JOB_COMPLETION_INDEX`` and an attempt counter file), and compare the final
status and what each pod counted as."""

from __future__ import annotations

import datetime as dt
import json
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest
import yaml

import kjob
from conftest import Backoff
from kjob._timeline import Timeline, TimelineRow

START = dt.datetime(2030, 1, 1, tzinfo=dt.timezone.utc)


def manifest(base: dict[str, Any] | None = None, name: str = "sim", **spec: Any) -> dict[str, Any]:
    """A Job of ``base`` and ``spec``'s fields whose pods run ``true``."""
    spec = {**(base or {}), **spec}
    template = {
        "spec": {
            "restartPolicy": "Never",
            "containers": [{"name": "c", "image": "busybox", "command": ["true"]}],
        }
    }
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": name},
        "spec": {**spec, "template": template},
    }


def rows(sim: kjob.Simulation) -> list[tuple[int | None, int, float, float | None, str]]:
    return [(r.index, r.attempt, r.created, r.finished, r.counted_as) for r in sim.timeline()]


def conditions(status: kjob.JobStatus) -> list[tuple[str, str]]:
    return [(c.type, c.reason) for c in status.conditions]


# ---- the Python API -----------------------------------------------------------------------------


def test_backoff_delays_are_real_and_virtual() -> None:
    """10 s, 20 s, 40 s after each failure (``backoff_utils.go``), from each failed pod's end;
    the whole simulation takes no real time."""
    sim = kjob.simulate(manifest(backoffLimit=2), {"*": {"exit_code": 1, "duration": 5}}, start=START)
    assert rows(sim) == [
        (None, 0, 0.0, 5.0, "failed"),
        (None, 1, 15.0, 20.0, "failed"),
        (None, 2, 40.0, 45.0, "failed"),
    ]
    assert conditions(sim.status) == [
        ("FailureTarget", "BackoffLimitExceeded"),
        ("Failed", "BackoffLimitExceeded"),
    ]
    assert (sim.status.failed, sim.status.succeeded, sim.end, sim.stopped) == (3, 0, 45.0, "settled")
    assert sim.status.start_time == START
    failed = sim.status.condition("Failed")
    assert failed is not None and failed.last_transition_time == START + dt.timedelta(seconds=45)


def test_default_outcome_is_success_after_one_second() -> None:
    sim = kjob.simulate(manifest(completions=3, parallelism=2), start=START)
    assert rows(sim) == [
        (None, 0, 0.0, 1.0, "succeeded"),
        (None, 0, 0.0, 1.0, "succeeded"),
        (None, 0, 1.0, 2.0, "succeeded"),
    ]
    assert sim.status.is_complete and sim.status.completion_time == START + dt.timedelta(seconds=2)
    reasons = [e.reason for e in sim.events]
    assert reasons == ["SuccessfulCreate"] * 3 + ["Completed"]
    assert all(isinstance(e, kjob.Event) and e.involved_object == "Job/default/sim" for e in sim.events)
    assert [e.time for e in sim.events][-1] == START + dt.timedelta(seconds=2)


def test_table_keys_most_specific_first() -> None:
    """``(index, attempt)`` beats ``index``, which beats ``'*,attempt'``, which beats ``'*'``."""
    table = {
        "*": {"duration": 2},
        "*,0": {"exit_code": 1},
        1: {"duration": 7},
        "2,0": {"duration": 3},
    }
    spec = {"completions": 3, "parallelism": 3, "completionMode": "Indexed", "backoffLimit": 6}
    sim = kjob.simulate(manifest(spec), table, start=START)
    assert rows(sim) == [
        (0, 0, 0.0, 1.0, "failed"),
        (1, 0, 0.0, 7.0, "succeeded"),
        (2, 0, 0.0, 3.0, "succeeded"),
        # Index 2's success at 3 s reset the backoff (`newBackoffRecord`): no 10 s wait.
        (0, 1, 3.0, 5.0, "succeeded"),
    ]
    same = kjob.simulate(
        manifest(spec),
        {(0, 0): {"exit_code": 1}, ("*", "*"): {"duration": 2}, 1: {"duration": 7}, (2, 0): {"duration": 3}},
        start=START,
    )
    assert rows(same) == rows(sim)


def test_callable_outcomes_are_asked_per_index_and_attempt() -> None:
    asked: list[tuple[int | None, int]] = []

    def outcome(index: int | None, attempt: int) -> dict[str, Any] | None:
        asked.append((index, attempt))
        return {"exit_code": 3, "duration": 0.5} if attempt < 2 else None

    spec = {"completions": 2, "parallelism": 2, "completionMode": "Indexed", "backoffLimitPerIndex": 3}
    sim = kjob.simulate(manifest(spec), outcome, start=START)
    assert sorted(asked) == [(0, 0), (0, 1), (0, 2), (1, 0), (1, 1), (1, 2)]
    assert [r.created for r in sim.timeline() if r.index == 0] == [0.0, 10.5, 31.0]
    assert sim.status.is_complete and sim.status.failed == 4 and sim.status.failed_indexes == ""


def test_pod_failure_policy_fail_job_and_killed_pods() -> None:
    spec = {
        "completions": 2,
        "parallelism": 2,
        "completionMode": "Indexed",
        "podFailurePolicy": {
            "rules": [{"action": "FailJob", "onExitCodes": {"operator": "In", "values": [42]}}]
        },
    }
    sim = kjob.simulate(
        manifest(spec), {0: {"exit_code": 42, "duration": 3}, 1: {"duration": 600}}, start=START
    )
    assert rows(sim) == [(0, 0, 0.0, 3.0, "failed"), (1, 0, 0.0, 3.0, "killed")]
    assert conditions(sim.status) == [("FailureTarget", "PodFailurePolicy"), ("Failed", "PodFailurePolicy")]
    failed = sim.status.condition("Failed")
    assert failed is not None
    assert failed.message.startswith("Container c for pod default/sim-0-")
    assert failed.message.endswith("failed with exit code 42 matching FailJob rule at index 0")


def _work() -> None:
    """A callable pod's target (never run here)."""


def test_exception_outcomes_match_on_exceptions_rules_by_base_class() -> None:
    """A builtin exception carries its real bases: ``KeyError`` matches ``LookupError``."""
    policy = {"rules": [{"action": "Ignore", "onExceptions": {"operator": "In", "values": ["LookupError"]}}]}
    job = kjob.Job(name="calls", target=_work, backoff_limit=0, pod_failure_policy=policy)
    sim = kjob.simulate(
        job, {"*,0": {"exception": "KeyError"}, "*,1": {"exception": "mypkg.Oops"}}, start=START
    )
    assert [r.counted_as for r in sim.timeline()] == ["ignored", "failed"]
    assert conditions(sim.status)[-1] == ("Failed", "BackoffLimitExceeded")
    assert sim.status.failed == 1


def test_disruption_target_evicts_the_pod() -> None:
    spec = {
        "backoffLimit": 0,
        "podFailurePolicy": {
            "rules": [{"action": "Ignore", "onPodConditions": [{"type": "DisruptionTarget"}]}]
        },
    }
    table = {"*,0": {"condition": "DisruptionTarget", "duration": 30}}
    sim = kjob.simulate(manifest(spec), table, start=START)
    assert rows(sim) == [(None, 0, 0.0, 30.0, "ignored"), (None, 1, 40.0, 41.0, "succeeded")]
    assert sim.status.is_complete and sim.status.failed == 0


def test_success_policy_and_deadline_and_ttl() -> None:
    spec = {
        "completions": 3,
        "parallelism": 3,
        "completionMode": "Indexed",
        "successPolicy": {"rules": [{"succeededIndexes": "0"}]},
        "ttlSecondsAfterFinished": 86400,
    }
    sim = kjob.simulate(manifest(spec), {0: {"duration": 5}, "*": {"duration": None}}, start=START)
    assert rows(sim) == [
        (0, 0, 0.0, 5.0, "succeeded"),
        (1, 0, 0.0, 5.0, "killed"),
        (2, 0, 0.0, 5.0, "killed"),
    ]
    assert conditions(sim.status) == [("SuccessCriteriaMet", "SuccessPolicy"), ("Complete", "SuccessPolicy")]
    assert (sim.deleted, sim.end) == (True, 86405.0)
    marks = sim.timeline().marks
    assert [(m.condition, m.at) for m in marks] == [("SuccessCriteriaMet", 5.0), ("Complete", 5.0)]

    deadline = kjob.simulate(manifest(activeDeadlineSeconds=3600), {"*": {"duration": None}}, start=START)
    assert rows(deadline) == [(None, 0, 0.0, 3600.0, "killed")]
    assert conditions(deadline.status) == [
        ("FailureTarget", "DeadlineExceeded"),
        ("Failed", "DeadlineExceeded"),
    ]


def test_pods_that_never_end_settle_active_and_limits_stop_endless_jobs() -> None:
    sim = kjob.simulate(manifest(), {"*": {"duration": None}}, start=START)
    assert (rows(sim), sim.stopped, sim.status.active) == ([(None, 0, 0.0, None, "active")], "settled", 1)
    ignore = {
        "podFailurePolicy": {
            "rules": [{"action": "Ignore", "onExitCodes": {"operator": "In", "values": [3]}}]
        }
    }
    endless = kjob.simulate(manifest(ignore), {"*": {"exit_code": 3}}, max_pods=20)
    assert (endless.stopped, len(endless.timeline())) == ("pod-limit", 21)
    timed = kjob.simulate(manifest(ignore), {"*": {"exit_code": 3}}, max_seconds=3600)
    assert timed.stopped == "time-limit" and timed.end <= 3600


def test_a_job_object_and_a_yaml_path(tmp_path: Path) -> None:
    job = kjob.Job(
        name="kw", command=["true"], completions=2, completion_mode="Indexed", backoff_initial_seconds=1
    )
    sim = kjob.simulate(job, {(0, 0): {"exit_code": 1}})
    # The Job's own backoff (1 s) holds every creation back, and the lowest index goes first.
    assert [(r.index, r.attempt, r.created) for r in sim.timeline()] == [
        (0, 0, 0.0),
        (0, 1, 2.0),
        (1, 0, 3.0),
    ]
    assert not job.status.conditions and job.pods() == [], "the Job itself did not run"
    path = tmp_path / "job.yaml"
    path.write_text(yaml.safe_dump(manifest(completions=2)))
    assert kjob.simulate(path).status.succeeded == 2
    assert kjob.simulate(str(path)).status.succeeded == 2
    assert isinstance(sim.timeline(), Timeline) and isinstance(sim.timeline()[0], TimelineRow)
    assert repr(sim).startswith("Simulation(job='kw', succeeded=2, failed=1, pods=3")


@pytest.mark.parametrize(
    ("outcomes", "error"),
    [
        (
            {"*": {"exit": 1}},
            "outcomes['*']: unknown field 'exit' (expected one of exit_code, exception, condition, duration)",
        ),
        (
            {"*": {"duration": -1}},
            "outcomes['*'].duration: Invalid value: -1: must be seconds >= 0 (or None)",
        ),
        ({"*": {"exit_code": "1"}}, "outcomes['*'].exit_code: Invalid value: '1': must be a 32-bit integer"),
        (
            {"*": {"condition": "Ready"}},
            "outcomes['*'].condition: Unsupported value: 'Ready': supported values: \"DisruptionTarget\"",
        ),
        (
            {"*": {"exception": "ValueError", "exit_code": 0}},
            "outcomes['*']: a pod that raised ValueError fails: exit_code cannot be 0",
        ),
        ({"x": {}}, "outcomes: key 'x': 'x' is not a number >= 0 or '*'"),
        ({"1,2,3": {}}, "outcomes: key '1,2,3': expected INDEX, (INDEX, ATTEMPT), '*' or '*,ATTEMPT'"),
    ],
)
def test_bad_outcomes_raise_value_error(outcomes: dict[Any, Any], error: str) -> None:
    with pytest.raises(ValueError) as e:
        kjob.simulate(manifest(), outcomes)
    assert str(e.value) == error


def test_errors_of_a_callable_propagate_and_bad_specs_are_value_errors() -> None:
    def broken(index: int | None, attempt: int) -> dict[str, Any]:
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="^boom$"):
        kjob.simulate(manifest(completions=1000, parallelism=1000), broken)
    with pytest.raises(TypeError, match=r"outcomes\(None, 0\): expected a dict"):
        kjob.simulate(manifest(), lambda i, a: 5)  # type: ignore[arg-type,return-value]
    with pytest.raises(
        ValueError, match="^spec.parallelism: Invalid value: -1: must be greater than or equal to 0$"
    ):
        kjob.simulate(manifest(parallelism=-1))
    job = kjob.Job(command=["true"])
    job.run(timeout=30)
    with pytest.raises(ValueError, match="has started"):
        kjob.simulate(job)


def test_hundred_thousand_indexes() -> None:
    """Complexity, not time (a debug build is slow; benches/simulate.rs has the figure)."""
    n = 100_000
    spec = {"completions": n, "parallelism": n, "completionMode": "Indexed"}
    sim = kjob.simulate(manifest(spec), {"*": {"duration": 2}})
    assert (sim.status.succeeded, sim.status.completed_indexes, sim.end) == (n, f"0-{n - 1}", 2.0)
    assert len(sim.timeline()) == n


# ---- the CLI ------------------------------------------------------------------------------------

JOB_YAML = """\
apiVersion: batch/v1
kind: Job
metadata: {name: demo}
spec:
  completions: 3
  parallelism: 2
  completionMode: Indexed
  backoffLimitPerIndex: 1
  template:
    spec:
      restartPolicy: Never
      containers: [{name: c, image: busybox, command: ["true"]}]
"""

OUTCOMES_YAML = """\
'*': {duration: 30}
1: {exit_code: 2}
"""


def kjob_cli(*args: str) -> subprocess.CompletedProcess[str]:
    code = "import sys; from kjob.cli import main; sys.exit(main(sys.argv[1:]))"
    return subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, timeout=60)


@pytest.fixture
def files(tmp_path: Path) -> tuple[str, str]:
    (tmp_path / "job.yaml").write_text(JOB_YAML)
    (tmp_path / "outcomes.yaml").write_text(OUTCOMES_YAML)
    return str(tmp_path / "job.yaml"), str(tmp_path / "outcomes.yaml")


def test_cli_table(files: tuple[str, str]) -> None:
    job, outcomes = files
    done = kjob_cli("simulate", "-f", job, "--outcomes", outcomes)
    assert (done.returncode, done.stderr) == (0, "")
    lines = done.stdout.splitlines()
    assert lines[0].split() == ["INDEX", "ATTEMPT", "POD", "CREATED", "FINISHED", "PHASE", "COUNTED", "AS"]
    table = [line.split() for line in lines[1:5]]
    assert [[c for i, c in enumerate(r) if i != 2] for r in table] == [
        ["0", "0", "0s", "30s", "Succeeded", "succeeded"],
        ["1", "0", "0s", "1s", "Failed", "failed"],
        ["1", "1", "11s", "12s", "Failed", "failed"],
        ["2", "0", "12s", "42s", "Succeeded", "succeeded"],
    ]
    assert all(r[2].startswith(f"demo-{r[0]}-") for r in table)
    rest = lines[5:]
    assert rest[:6] == [
        "",
        "Conditions:  FailureTarget (FailedIndexes) at 42s, Failed (FailedIndexes) at 42s",
        "Pods:        0 active / 2 succeeded / 2 failed",
        "Completed Indexes:  0,2",
        "Failed Indexes:     1",
        "Ends at:     42s",
    ]
    assert rest[7] == "Events:"
    assert rest[-1].split() == ["42s", "Warning", "FailedIndexes", "Job", "has", "failed", "indexes"]


@pytest.mark.parametrize("output", ["yaml", "json"])
def test_cli_yaml_and_json(files: tuple[str, str], output: str) -> None:
    job, outcomes = files
    done = kjob_cli("simulate", "-f", job, "--outcomes", outcomes, "-o", output)
    assert done.returncode == 0, done.stderr
    data = json.loads(done.stdout) if output == "json" else yaml.safe_load(done.stdout)
    assert (data["job"], data["end"], data["stopped"], data["deleted"]) == ("demo", 42.0, "settled", False)
    status = data["status"]
    assert (status["succeeded"], status["failed"], status["completedIndexes"], status["failedIndexes"]) == (
        2,
        2,
        "0,2",
        "1",
    )
    assert [c["type"] for c in status["conditions"]] == ["FailureTarget", "Failed"]
    assert [
        (p["index"], p["attempt"], p["created"], p["finished"], p["countedAs"]) for p in data["pods"]
    ] == [
        (0, 0, 0.0, 30.0, "succeeded"),
        (1, 0, 0.0, 1.0, "failed"),
        (1, 1, 11.0, 12.0, "failed"),
        (2, 0, 12.0, 42.0, "succeeded"),
    ]
    assert [(e["at"], e["reason"]) for e in data["events"]][-1] == (42.0, "FailedIndexes")


def test_cli_svg_draws_the_simulated_timeline(files: tuple[str, str]) -> None:
    """`kjob simulate -o svg`: the picture of the simulated pods, one row per index and one
    bar per attempt (issue 17 §4)."""
    import xml.etree.ElementTree as ET

    job, outcomes = files
    done = kjob_cli("simulate", "-f", job, "--outcomes", outcomes, "-o", "svg")
    assert done.returncode == 0, done.stderr
    root = ET.fromstring(done.stdout)
    assert root.tag == "{http://www.w3.org/2000/svg}svg"
    titles = [t.text or "" for t in root.iter("{http://www.w3.org/2000/svg}title")]
    # Four pods (index 1 ran twice): each bar has a title naming its pod.
    assert sum(1 for t in titles if t.startswith("demo-")) >= 4


def test_cli_without_outcomes_and_bad_input(files: tuple[str, str], tmp_path: Path) -> None:
    job, _ = files
    done = kjob_cli("simulate", "-f", job, "-o", "json")
    assert done.returncode == 0 and json.loads(done.stdout)["status"]["succeeded"] == 3
    bad = tmp_path / "bad.yaml"
    bad.write_text("'*': {exit: 1}\n")
    done = kjob_cli("simulate", "-f", job, "--outcomes", str(bad))
    expected = f"error: {bad}: outcomes['*']: unknown field 'exit' (expected one of exit_code, exception, condition, duration)\n"
    assert (done.returncode, done.stdout, done.stderr) == (2, "", expected)
    done = kjob_cli("simulate", "-f", job, "--outcomes", str(tmp_path / "missing.yaml"))
    assert (done.returncode, done.stderr) == (2, f"error: {tmp_path / 'missing.yaml'}: no such file\n")


# ---- simulated against real runs ------------------------------------------------------------------

# A pod that ends as the outcome table says: its attempt is the number of earlier runs of its
# index (a counter file per index), its outcome looked up as kjob.simulate looks it up.
POD_SCRIPT = textwrap.dedent(
    """\
    import json, os, sys, time
    table, folder = json.loads(sys.argv[1]), sys.argv[2]
    index = os.environ.get("JOB_COMPLETION_INDEX", "*")
    counter = os.path.join(folder, "runs-" + index)
    attempt = int(open(counter).read()) if os.path.exists(counter) else 0
    with open(counter, "w") as f:
        f.write(str(attempt + 1))
    for key in (f"{index},{attempt}", index, f"*,{attempt}", "*"):
        if key in table:
            outcome = table[key]
            break
    else:
        outcome = {}
    time.sleep(outcome.get("duration", 1) if outcome.get("duration", 1) is not None else 3600)
    sys.exit(outcome.get("exit_code", 0))
    """
)

ignore_3 = {"rules": [{"action": "Ignore", "onExitCodes": {"operator": "In", "values": [3]}}]}
fail_job_42 = {"rules": [{"action": "FailJob", "onExitCodes": {"operator": "In", "values": [42]}}]}

POLICIES: list[tuple[str, dict[str, Any], dict[str, Any]]] = [
    (
        "per-index-backoff",
        {"completions": 3, "parallelism": 3, "completionMode": "Indexed", "backoffLimitPerIndex": 1},
        {"1": {"exit_code": 1, "duration": 0.05}, "*": {"duration": 0.05}},
    ),
    (
        "backoff-limit",
        {"completions": 2, "parallelism": 1, "backoffLimit": 1},
        {"*,0": {"exit_code": 1, "duration": 0.05}, "*": {"duration": 0.05}},
    ),
    (
        "backoff-limit-exceeded",
        {"backoffLimit": 1},
        {"*": {"exit_code": 1, "duration": 0.05}},
    ),
    (
        "pfp-fail-job",
        {"completions": 2, "parallelism": 2, "completionMode": "Indexed", "podFailurePolicy": fail_job_42},
        {"0": {"exit_code": 42, "duration": 0.3}, "1": {"duration": None}},
    ),
    (
        "pfp-ignore-then-count",
        {"backoffLimit": 0, "podFailurePolicy": ignore_3},
        {
            "*,0": {"exit_code": 3, "duration": 0.05},
            "*,1": {"exit_code": 3, "duration": 0.05},
            "*": {"exit_code": 4, "duration": 0.05},
        },
    ),
    (
        "success-policy",
        {
            "completions": 3,
            "parallelism": 3,
            "completionMode": "Indexed",
            "successPolicy": {"rules": [{"succeededIndexes": "0"}]},
        },
        {"0": {"duration": 0.3}, "*": {"duration": None}},
    ),
    (
        "on-failure-restarts",
        {"completions": 2, "parallelism": 2, "completionMode": "Indexed", "restartPolicy": "OnFailure"},
        {
            "1,0": {"exit_code": 1, "duration": 0.05},
            "1,1": {"exit_code": 1, "duration": 0.05},
            "*": {"duration": 0.05},
        },
    ),
    (
        "deadline",
        {"completions": 2, "parallelism": 2, "activeDeadlineSeconds": 1},
        {"*": {"duration": None}},
    ),
]


def real_counted_as(pod: kjob.Pod, ignored_codes: set[int]) -> str:
    """What a real pod counted as, from its snapshot: these pods never exit 143 by themselves,
    so 143 means the Job killed them."""
    if pod.phase == "Succeeded":
        return "succeeded"
    if pod.phase != "Failed":
        return "active"
    if pod.exit_code == 143:
        return "killed"
    return "ignored" if pod.exit_code in ignored_codes else "failed"


@pytest.mark.parametrize(("name", "spec", "table"), POLICIES, ids=[p[0] for p in POLICIES])
def test_simulated_outcomes_match_a_real_run(
    name: str, spec: dict[str, Any], table: dict[str, Any], tmp_path: Path
) -> None:
    script = tmp_path / "pod.py"
    script.write_text(POD_SCRIPT)
    spec = dict(spec)  # the parameters are shared
    restart_policy = spec.pop("restartPolicy", "Never")
    m = manifest(spec, name)
    m["spec"]["template"]["spec"]["restartPolicy"] = restart_policy
    m["spec"]["template"]["spec"]["containers"][0]["command"] = [
        sys.executable,
        str(script),
        json.dumps(table),
        str(tmp_path),
    ]
    m["spec"]["template"]["spec"]["terminationGracePeriodSeconds"] = 1
    backoff: Backoff = {"backoff_initial_seconds": 0.2, "backoff_max_seconds": 1.0}

    sim = kjob.simulate(kjob.Job.from_manifest(m, **backoff), table)
    real_job = kjob.Job.from_manifest(m, **backoff)
    try:
        real = real_job.run(timeout=30)
        pods = real_job.pods()
    finally:
        real_job.delete()

    rules = spec.get("podFailurePolicy", {}).get("rules", [])
    ignored = {v for r in rules if r["action"] == "Ignore" for v in r["onExitCodes"]["values"]}
    assert conditions(sim.status) == conditions(real)

    def counts(s: kjob.JobStatus) -> tuple[int, int, int, str, str | None]:
        return (s.succeeded, s.failed, s.active, s.completed_indexes, s.failed_indexes)

    assert counts(sim.status) == counts(real)
    simulated = sorted(((r.index or 0), r.attempt, r.phase, r.counted_as) for r in sim.timeline())
    # The simulation's attempt counts restarts in place too (restartPolicy: OnFailure).
    observed = sorted(
        ((p.index or 0), p.attempt + p.restart_count, p.phase, real_counted_as(p, ignored)) for p in pods
    )
    assert simulated == observed
    # The real pods' own verdict (Pod.counted_as, from the controller) agrees with the snapshot.
    assert [p.counted_as for p in pods] == [real_counted_as(p, ignored) for p in pods]


def test_a_simulation_shows_its_timeline_in_a_notebook() -> None:
    """`_repr_html_`: a line with the outcome, then the same SVG as `timeline().svg()`."""
    manifest = yaml.safe_load(JOB_YAML)
    sim = kjob.simulate(manifest, yaml.safe_load(OUTCOMES_YAML))
    html = sim._repr_html_()
    assert html.startswith("<p><b>Simulation of job.batch/demo</b>: ")
    assert "Failed (FailedIndexes)" in html
    assert html.endswith(sim.timeline().svg())
