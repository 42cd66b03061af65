"""Job.timeline() (issue 17 §4): rows of real Jobs, and Timeline.svg() parsed as XML."""

from __future__ import annotations

import time
import xml.etree.ElementTree as ET
from collections.abc import Callable
from pathlib import Path

import pytest

import kjob
from kjob import Timeline, TimelineMark, TimelineRow
from kjob._timeline import COLOURS, _tick_step
from kjob.cli import main

SVG = "{http://www.w3.org/2000/svg}"


def wait_for(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


def parse(svg: str) -> ET.Element:
    root = ET.fromstring(svg)
    assert root.tag == f"{SVG}svg"
    return root


def bars(root: ET.Element) -> list[ET.Element]:
    return [e for e in root.iter(f"{SVG}rect") if "bar" in e.get("class", "").split()]


def groups(root: ET.Element, klass: str) -> list[ET.Element]:
    return [e for e in root.iter(f"{SVG}g") if e.get("class") == klass]


def by_index(timeline: Timeline) -> dict[int | None, list[TimelineRow]]:
    rows: dict[int | None, list[TimelineRow]] = {}
    for row in timeline:
        rows.setdefault(row.index, []).append(row)
    return rows


# ---- real Jobs -----------------------------------------------------------------------------


def test_indexed_job_retries_an_index_and_ignores_a_policy_failure(tmp_path: Path) -> None:
    # Index 1 fails twice (counted), index 2 exits 3 once (podFailurePolicy Ignore), the
    # rest succeed: pod_failure_policy.go keeps the exit-3 failure out of status.failed.
    script = (
        f"f={tmp_path}/i$JOB_COMPLETION_INDEX; n=$(cat $f 2>/dev/null || echo 0); echo $((n+1)) > $f; "
        'if [ "$JOB_COMPLETION_INDEX" = 1 ] && [ $n -lt 2 ]; then exit 1; fi; '
        'if [ "$JOB_COMPLETION_INDEX" = 2 ] && [ $n -lt 1 ]; then exit 3; fi; exit 0'
    )
    job = kjob.Job(
        name="retries",
        command=script,
        completions=3,
        parallelism=3,
        completion_mode="Indexed",
        backoff_limit=6,
        pod_failure_policy={
            "rules": [{"action": "Ignore", "onExitCodes": {"operator": "In", "values": [3]}}]
        },
        backoff_initial_seconds=0.05,
        log_dir=tmp_path / "logs",
    )
    status = job.run(timeout=30)
    assert (status.succeeded, status.failed) == (3, 2)
    timeline = job.timeline()
    rows = by_index(timeline)
    assert [(r.attempt, r.phase, r.counted_as) for r in rows[0]] == [(0, "Succeeded", "succeeded")]
    assert [(r.attempt, r.phase, r.counted_as) for r in rows[1]] == [
        (0, "Failed", "failed"),
        (1, "Failed", "failed"),
        (2, "Succeeded", "succeeded"),
    ]
    assert [(r.attempt, r.phase, r.counted_as) for r in rows[2]] == [
        (0, "Failed", "ignored"),
        (1, "Succeeded", "succeeded"),
    ]
    assert [r.pod for r in timeline] == [p.name for p in job.pods()]
    # Times count from the Job's start; a retry is made only after its predecessor ended
    # (the backoff gap the picture draws).
    assert min(r.created for r in timeline) == 0.0
    for attempts in rows.values():
        for before, after in zip(attempts, attempts[1:]):
            assert before.finished is not None and after.created > before.finished
    assert timeline.end is not None and timeline.end >= max(r.finished or 0 for r in timeline)
    assert [(m.condition, m.reason) for m in timeline.marks] == [
        ("SuccessCriteriaMet", "CompletionsReached"),
        ("Complete", "CompletionsReached"),
    ]
    assert timeline.marks[0].at == timeline.end

    root = parse(timeline.svg())
    assert [g.get("data-row") for g in groups(root, "row")] == ["index 0", "index 1", "index 2"]
    assert [b.get("data-counted-as") for b in bars(root)] == [
        "succeeded",
        "failed",
        "failed",
        "succeeded",
        "ignored",
        "succeeded",
    ]
    assert len([e for e in root.iter(f"{SVG}line") if e.get("class") == "gap"]) == 3
    assert [g.get("data-conditions") for g in groups(root, "mark")] == ["SuccessCriteriaMet, Complete"]
    assert "<svg" in job._repr_html_()


def test_deleted_job_kills_its_running_pods_which_are_active_before(tmp_path: Path) -> None:
    job = kjob.Job(
        name="doomed",
        command="sleep 300",
        completions=2,
        parallelism=2,
        termination_grace_period_seconds=1,
        log_dir=tmp_path,
    )
    assert "<svg" not in job._repr_html_()
    job.start()
    wait_for(lambda: job.status.ready == 2)
    running = job.timeline()
    assert [(r.attempt, r.finished, r.phase, r.counted_as) for r in running] == [
        (0, None, "Running", "active"),
        (1, None, "Running", "active"),
    ]
    assert running.end is None and running.now is not None and running.now > 0
    root = parse(running.svg())
    assert [b.get("class") for b in bars(root)] == ["bar running", "bar running"]
    # A running bar reaches "now", the right end of the axis.
    assert all(float(b.get("x", 0)) + float(b.get("width", 0)) == 900 - 24 for b in bars(root))
    assert "<svg" in job._repr_html_()

    job.delete()
    ended = job.timeline()
    assert job.pods() == []
    assert [(r.phase, r.counted_as) for r in ended] == [("Failed", "killed"), ("Failed", "killed")]
    assert all(r.finished is not None for r in ended)
    assert [b.get("fill") for b in bars(parse(ended.svg()))] == [COLOURS["killed"]] * 2


def test_suspended_job_kills_its_pods_and_marks_the_suspension(tmp_path: Path) -> None:
    job = kjob.Job(name="paused", command="sleep 300", termination_grace_period_seconds=1, log_dir=tmp_path)
    job.start()
    try:
        wait_for(lambda: job.status.ready == 1)
        job.suspend()
        wait_for(lambda: job.pods()[0].phase == "Failed")
        timeline = job.timeline()
        assert [(r.phase, r.counted_as) for r in timeline] == [("Failed", "killed")]
        assert [(m.condition, m.reason) for m in timeline.marks] == [("Suspended", "JobSuspended")]
        assert timeline.end is None
    finally:
        job.delete()


@pytest.mark.parametrize(("action", "expected"), [(None, "failed"), ("Ignore", "ignored")])
def test_evicted_pod_fails_or_is_ignored_by_a_disruption_rule(
    tmp_path: Path, action: str | None, expected: str
) -> None:
    # An eviction (DisruptionTarget) is a failure Kubernetes counts, unless a rule ignores it.
    rules = [{"action": action, "onPodConditions": [{"type": "DisruptionTarget"}]}] if action else []
    job = kjob.Job(
        name="evicted",
        command="sleep 300",
        backoff_limit=3,
        termination_grace_period_seconds=1,
        pod_failure_policy={"rules": rules} if rules else None,
        backoff_initial_seconds=0.01,
        log_dir=tmp_path,
    )
    job.start()
    wait_for(lambda: job.status.ready == 1)
    job.evict(job.pods()[0].name)
    wait_for(lambda: len(job.pods()) == 2)
    assert job.status.failed == (1 if action is None else 0)
    job.delete()
    assert [(r.attempt, r.counted_as) for r in job.timeline()] == [(0, expected), (1, "killed")]


def test_active_deadline_kills_a_nonindexed_job_and_marks_the_failure(tmp_path: Path) -> None:
    job = kjob.Job.from_manifest(
        {
            "apiVersion": "batch/v1",
            "kind": "Job",
            "metadata": {"name": "late"},
            "spec": {
                "completions": 3,
                "parallelism": 2,
                "activeDeadlineSeconds": 1,
                "template": {
                    "spec": {
                        "restartPolicy": "Never",
                        "terminationGracePeriodSeconds": 1,
                        "containers": [{"name": "main", "image": "busybox", "command": ["sleep", "300"]}],
                    }
                },
            },
        },
        log_dir=tmp_path,
    )
    status = job.run(timeout=30)
    assert status.condition("Failed") is not None
    timeline = job.timeline()
    assert [(r.index, r.attempt, r.counted_as) for r in timeline] == [
        (None, 0, "killed"),
        (None, 1, "killed"),
    ]
    assert [(m.condition, m.reason) for m in timeline.marks] == [
        ("FailureTarget", "DeadlineExceeded"),
        ("Failed", "DeadlineExceeded"),
    ]
    failed_at = timeline.marks[1].at
    assert timeline.end == failed_at and 1.0 <= failed_at < 5.0
    root = parse(timeline.svg())
    assert [g.get("data-row") for g in groups(root, "row")] == ["pod 0", "pod 1"]


# ---- the picture ---------------------------------------------------------------------------

EXAMPLE = Timeline(
    "demo",
    [
        TimelineRow(0, 0, "demo-0-a", 0.0, 2.0, "Succeeded", "succeeded"),
        TimelineRow(1, 0, "demo-1-a", 0.0, 1.0, "Failed", "failed"),
        TimelineRow(2, 0, "demo-2-a", 0.0, 3.0, "Failed", "ignored"),
        TimelineRow(1, 1, "demo-1-b", 2.0, 4.0, "Succeeded", "succeeded"),
        TimelineRow(3, 0, "demo-3-<&>", 1.0, None, "Running", "active"),
        TimelineRow(2, 1, "demo-2-b", 3.0, 5.0, "Failed", "killed"),
    ],
    [
        TimelineMark("FailureTarget", "BackoffLimitExceeded", 5.0),
        TimelineMark("Failed", "BackoffLimitExceeded", 5.0),
        TimelineMark("Suspended", "JobSuspended", 1.5),
    ],
    end=5.0,
)


def test_svg_has_a_row_per_index_and_a_bar_per_pod_coloured_by_outcome() -> None:
    root = parse(EXAMPLE.svg())
    assert root.get("role") == "img"
    assert root.findtext(f"{SVG}title") == "Timeline of Job demo: 6 pods"
    rows = groups(root, "row")
    assert [g.get("data-row") for g in rows] == ["index 0", "index 1", "index 2", "index 3"]
    assert [len(bars(g)) for g in rows] == [1, 2, 2, 1]
    assert {b.get("data-counted-as"): b.get("fill") for b in bars(root)} == {
        "succeeded": "#009e73",
        "failed": "#d55e00",
        "ignored": "#e69f00",
        "killed": "#999999",
        "active": "#0072b2",
    }
    # Every bar says what it is, escaped: the pod, its times, its outcome.
    titles = [b.findtext(f"{SVG}title") for b in bars(root)]
    assert titles[0] == (
        "demo-0-a (index 0, attempt 0): succeeded, phase Succeeded; created 0.00 s, finished 2.00 s, 2.00 s in all"
    )
    assert titles[-1] == (
        "demo-3-<&> (index 3, attempt 0): active, phase Running; created 1.00 s, still running at 5.00 s, "
        "4.00 s in all"
    )
    # The running pod's bar ends where the Job ended (the right end of the axis).
    running = [b for b in bars(root) if b.get("class") == "bar running"]
    assert len(running) == 1
    assert float(running[0].get("x", 0)) + float(running[0].get("width", 0)) == 900 - 24


def test_svg_draws_gaps_marks_axis_and_legend() -> None:
    root = parse(EXAMPLE.svg())
    gaps = [e for e in root.iter(f"{SVG}line") if e.get("class") == "gap"]
    assert [g.findtext(f"{SVG}title") for g in gaps] == [
        "1.00 s from the end of demo-1-a to the creation of demo-1-b"
    ]
    assert gaps[0].get("stroke-dasharray") == "3 2"
    # Conditions of one time share a line; they are drawn in time order.
    assert [g.get("data-conditions") for g in groups(root, "mark")] == ["Suspended", "FailureTarget, Failed"]
    assert [g.findtext(f"{SVG}title") for g in groups(root, "mark")][1] == (
        "FailureTarget (BackoffLimitExceeded) at 5.00 s; Failed (BackoffLimitExceeded) at 5.00 s"
    )
    ticks = [t.text for g in groups(root, "axis") for t in g.iter(f"{SVG}text")]
    assert ticks == ["0s", "1s", "2s", "3s", "4s", "5s", "time since the Job started"]
    legend = [g.get("data-counted-as") or g.get("data-legend") for g in groups(root, "legend-item")]
    assert legend == ["succeeded", "failed", "ignored", "killed", "active", "gap", "condition"]


def test_svg_legend_shows_only_the_outcomes_present_and_an_empty_timeline_draws() -> None:
    one = Timeline("one", [TimelineRow(None, 0, "one-x", 0.0, 0.5, "Succeeded", "succeeded")])
    legend = [
        g.get("data-counted-as") or g.get("data-legend") for g in groups(parse(one.svg()), "legend-item")
    ]
    assert legend == ["succeeded", "gap"]
    empty = parse(Timeline("none", []).svg())
    assert bars(empty) == []
    assert "no pods yet" in [t.text for t in empty.iter(f"{SVG}text")]


def test_svg_of_a_huge_job_draws_the_first_rows_and_says_how_many_it_left_out() -> None:
    rows = [TimelineRow(i, 0, f"big-{i}", 0.0, 1.0, "Succeeded", "succeeded") for i in range(1000)]
    rows.append(TimelineRow(999, 1, "big-999-b", 1.5, 2.0, "Succeeded", "succeeded"))
    root = parse(Timeline("big", rows).svg())
    assert len(groups(root, "row")) == 50
    notes = [t.text for t in root.iter(f"{SVG}text") if t.get("class") == "truncated"]
    assert notes == ["950 more rows (951 pods) not drawn"]
    assert len(groups(parse(Timeline("big", rows).svg(max_rows=5)), "row")) == 5


@pytest.mark.parametrize(
    ("span", "step"),
    [(1.0, 0.2), (5.0, 1.0), (7.3, 1.0), (9.0, 2.0), (60.0, 10.0), (600.0, 100.0), (0.004, 0.0005)],
)
def test_ticks_are_round_steps(span: float, step: float) -> None:
    assert _tick_step(span) == pytest.approx(step)


def test_table_and_repr_html() -> None:
    assert EXAMPLE.table().splitlines()[:2] == [
        "INDEX   ATTEMPT   POD          CREATED   FINISHED   PHASE       COUNTED-AS",
        "0       0         demo-0-a     0.000     2.000      Succeeded   succeeded",
    ]
    assert (
        EXAMPLE.table().splitlines()[5]
        == "3       0         demo-3-<&>   1.000     -          Running     active"
    )
    assert EXAMPLE._repr_html_() == EXAMPLE.svg()
    assert EXAMPLE.horizon() == 5.0


# ---- the CLI -------------------------------------------------------------------------------

MANIFEST = """\
apiVersion: batch/v1
kind: Job
metadata: {name: drawn}
spec:
  completions: 3
  parallelism: 2
  template:
    spec:
      restartPolicy: Never
      containers:
      - {name: main, image: busybox, command: [sh, -c, "exit 0"]}
"""


def test_cli_writes_the_svg_of_the_job_it_ran(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    manifest = tmp_path / "job.yaml"
    manifest.write_text(MANIFEST)
    out = tmp_path / "job.svg"
    assert main(["timeline", "-f", str(manifest), "-o", "svg", "--output-file", str(out)]) == 0
    root = parse(out.read_text())
    assert [g.get("data-row") for g in groups(root, "row")] == ["pod 0", "pod 1", "pod 2"]
    assert {b.get("data-counted-as") for b in bars(root)} == {"succeeded"}
    captured = capsys.readouterr()
    assert captured.out == ""
    assert f"timeline of job.batch/drawn written to {out}" in captured.err

    assert main(["timeline", "-f", str(manifest)]) == 0
    parse(capsys.readouterr().out)
    assert main(["timeline", "-f", str(manifest), "-o", "table"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["INDEX", "ATTEMPT", "POD", "CREATED", "FINISHED", "PHASE", "COUNTED-AS"]
    assert [line.split()[-1] for line in lines[1:]] == ["succeeded"] * 3


def test_cli_draws_one_job(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    manifest = tmp_path / "jobs.yaml"
    manifest.write_text(MANIFEST + "---\n" + MANIFEST.replace("drawn", "other"))
    assert main(["timeline", "-f", str(manifest)]) == 2
    assert capsys.readouterr().err == f"error: {manifest}: kjob timeline draws one Job; the files hold 2\n"


def test_cli_refuses_a_suspended_job(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    manifest = tmp_path / "job.yaml"
    manifest.write_text(MANIFEST.replace("  completions: 3\n", "  completions: 3\n  suspend: true\n"))
    assert main(["timeline", "-f", str(manifest)]) == 2
    assert capsys.readouterr().err == (
        f"error: {manifest}: job.batch/drawn has spec.suspend: true, so no pod would run and `kjob timeline` "
        "would wait forever; remove it (or set it false) to run the Job here\n"
    )
