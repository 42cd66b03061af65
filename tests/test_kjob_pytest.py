"""``kjob pytest``: the real command on small generated suites, pods running real pytest."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import kubernetes_validate  # type: ignore[import-untyped]
import pytest
import yaml

from kjob import _pytest_shards
from kjob._pytest_shards import decode_shards, split


def _suite(folder: Path, files: dict[str, str]) -> Path:
    # Its own ini file: the suite is its own rootdir, whatever holds the temporary folder.
    (folder / "pytest.ini").write_text("[pytest]\n")
    for name, text in files.items():
        (folder / name).write_text(text)
    return folder


def _kjob_pytest(folder: Path, *args: str) -> subprocess.CompletedProcess[str]:
    # Without this environment's plugins (hypothesis alone takes a second to import), which
    # the generated suites do not use; the pods inherit the setting.
    env = {**os.environ, "PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1"}
    return subprocess.run(
        [sys.executable, "-m", "kjob.cli", "pytest", *args],
        cwd=folder,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def _cases(xml_path: Path) -> dict[str, ET.Element]:
    """The merged file's test cases by node id; each node id must appear once."""
    cases: dict[str, ET.Element] = {}
    for case in ET.parse(xml_path).getroot().iter("testcase"):
        (nodeid,) = [p.get("value") for p in case.iter("property") if p.get("name") == "kjob-nodeid"]
        assert nodeid is not None and nodeid not in cases
        cases[nodeid] = case
    return cases


PASSING = "\n".join(f"def test_{i}():\n    assert {i} == {i}\n" for i in range(7))


def test_shards_that_all_pass_exit_0_and_the_merged_xml_has_every_test_once(tmp_path: Path) -> None:
    folder = _suite(tmp_path, {"test_a.py": PASSING, "test_b.py": "def test_b():\n    pass\n"})
    done = _kjob_pytest(folder, "--shards", "3", "--junitxml", "merged.xml")
    assert done.returncode == 0, done.stdout + done.stderr
    cases = _cases(folder / "merged.xml")
    assert sorted(cases) == sorted([f"test_a.py::test_{i}" for i in range(7)] + ["test_b.py::test_b"])
    suite = ET.parse(folder / "merged.xml").getroot().find("testsuite")
    assert suite is not None
    assert (suite.get("tests"), suite.get("failures"), suite.get("errors")) == ("8", "0", "0")
    assert "kjob pytest: 8 passed in 3 shards" in done.stdout
    assert "kjob pytest: 8 tests in 3 shards\n" in done.stderr


def test_a_failing_test_exits_1_and_is_a_failure_in_the_merged_xml(tmp_path: Path) -> None:
    folder = _suite(tmp_path, {"test_a.py": PASSING + "\ndef test_bad():\n    assert 1 == 2\n"})
    done = _kjob_pytest(folder, "--shards", "2", "--junitxml", "merged.xml")
    assert done.returncode == 1, done.stdout + done.stderr
    cases = _cases(folder / "merged.xml")
    assert len(cases) == 8
    assert [n for n, c in cases.items() if c.find("failure") is not None] == ["test_a.py::test_bad"]
    # The failed shard's pytest output is shown.
    assert "assert 1 == 2" in done.stdout
    assert "kjob pytest: 1 failed, 7 passed in 2 shards" in done.stdout


def test_a_test_failing_every_retry_keeps_its_earlier_failures_as_rerun_failures(tmp_path: Path) -> None:
    folder = _suite(tmp_path, {"test_a.py": "def test_bad():\n    assert 1 == 2\n"})
    done = _kjob_pytest(
        folder, "--shards", "1", "--retries", "2", "--backoff-initial-seconds", "0", "--junitxml", "m.xml"
    )
    assert done.returncode == 1, done.stdout + done.stderr
    case = _cases(folder / "m.xml")["test_a.py::test_bad"]
    assert case.find("failure") is not None
    assert len(case.findall("rerunFailure")) == 2
    assert "FLAKY" not in done.stdout


FLAKY = """
from pathlib import Path

def test_flaky():
    marker = Path(__file__).with_name("failed-once")
    if not marker.exists():
        marker.write_text("")
        assert False, "first attempt fails"
"""


def test_a_flaky_test_passes_on_the_retry_of_its_shard_alone_and_is_reported(tmp_path: Path) -> None:
    folder = _suite(tmp_path, {"test_a.py": PASSING, "test_flaky.py": FLAKY})
    done = _kjob_pytest(
        folder, "--shards", "3", "--retries", "1", "--backoff-initial-seconds", "0", "--junitxml", "m.xml"
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "FLAKY test_flaky.py::test_flaky (failed in attempt 0, then passed)" in done.stdout
    # Only the flaky test's shard ran twice.
    assert "kjob pytest: 8 passed, 1 flaky in 3 shards (1 retried), " in done.stdout
    assert done.stdout.count("===== shard ") == 1
    cases = _cases(folder / "m.xml")
    flaky = cases["test_flaky.py::test_flaky"]
    assert flaky.find("failure") is None
    (first,) = flaky.findall("flakyFailure")
    assert "first attempt fails" in (first.get("message") or "")
    assert all(not c.findall("flakyFailure") for n, c in cases.items() if n != "test_flaky.py::test_flaky")


def test_without_retries_a_flaky_test_fails(tmp_path: Path) -> None:
    folder = _suite(tmp_path, {"test_flaky.py": FLAKY})
    done = _kjob_pytest(folder, "--shards", "2")
    assert done.returncode == 1, done.stdout + done.stderr


def test_no_tests_collected_exits_5(tmp_path: Path) -> None:
    folder = _suite(tmp_path, {"test_a.py": PASSING})
    done = _kjob_pytest(folder, "--shards", "2", "--", "-k", "no_such_test")
    assert done.returncode == 5, done.stdout + done.stderr
    assert "kjob pytest: no tests collected" in done.stdout


def test_a_usage_error_of_pytest_exits_4_before_any_pod(tmp_path: Path) -> None:
    folder = _suite(tmp_path, {"test_a.py": PASSING})
    done = _kjob_pytest(folder, "--shards", "2", "--", "--no-such-option")
    assert done.returncode == 4, done.stdout + done.stderr
    assert "unrecognized arguments: --no-such-option" in done.stdout


def test_an_internal_error_in_a_shard_is_not_retried_and_is_the_exit_code(tmp_path: Path) -> None:
    # A conftest hook raising on a test's report is pytest's INTERNALERROR (exit 3); the
    # podFailurePolicy fails the index at once, whatever --retries says.
    conftest = "def pytest_runtest_logreport(report):\n    raise RuntimeError('boom')\n"
    folder = _suite(tmp_path, {"test_a.py": PASSING, "conftest.py": conftest})
    done = _kjob_pytest(folder, "--shards", "1", "--retries", "3", "--backoff-initial-seconds", "0")
    assert done.returncode == 3, done.stdout + done.stderr
    assert done.stdout.count("===== shard ") == 1


def test_the_second_run_is_balanced_by_the_first_runs_durations(tmp_path: Path) -> None:
    folder = _suite(tmp_path, {"test_a.py": PASSING})
    first = _kjob_pytest(folder, "--shards", "2")
    assert first.returncode == 0, first.stdout + first.stderr
    assert "balanced" not in first.stderr
    second = _kjob_pytest(folder, "--shards", "2")
    assert second.returncode == 0, second.stdout + second.stderr
    assert "kjob pytest: 7 tests in 2 shards (balanced by the last run's durations)" in second.stderr
    assert (folder / ".pytest_cache" / "d" / "kjob" / "pytest-durations.json").exists()


def test_dry_run_prints_a_valid_indexed_job_carrying_its_shards(tmp_path: Path) -> None:
    folder = _suite(tmp_path, {"test_a.py": PASSING})
    done = _kjob_pytest(
        folder,
        "--shards",
        "3",
        "--retries",
        "2",
        "--dry-run",
        "-o",
        "yaml",
        "--image",
        "python:3.12",
        "--",
        "-x",
    )
    assert done.returncode == 0, done.stderr
    job = yaml.safe_load(done.stdout)
    assert kubernetes_validate.validate(job, kubernetes_validate.latest_version(), strict=True) is not None
    spec = job["spec"]
    assert (spec["completionMode"], spec["completions"], spec["parallelism"]) == ("Indexed", 3, 3)
    assert spec["backoffLimitPerIndex"] == 2
    (container,) = spec["template"]["spec"]["containers"]
    assert container["image"] == "python:3.12"
    assert container["command"] == ["python", "-m", "kjob._pytest_shards", "shard", "--", "-x"]
    (env,) = container["env"]
    assert env["name"] == "KJOB_PYTEST_SHARDS"
    shards = decode_shards(env["value"])
    assert sorted(n for shard in shards for n in shard) == sorted(f"test_a.py::test_{i}" for i in range(7))
    # The local Job is this manifest too: kjob accepts it.
    import kjob

    kjob.Job.from_manifest(job).delete()


def test_dry_run_needs_an_image_and_an_output(tmp_path: Path) -> None:
    done = _kjob_pytest(_suite(tmp_path, {}), "--shards", "2", "--dry-run")
    assert done.returncode == 2
    assert "give -o yaml|json and --image" in done.stderr


def test_dry_run_json_is_the_same_job(tmp_path: Path) -> None:
    folder = _suite(tmp_path, {"test_a.py": PASSING})
    common = ("--shards", "2", "--dry-run", "--image", "python:3.12")
    as_json = _kjob_pytest(folder, *common, "-o", "json")
    as_yaml = _kjob_pytest(folder, *common, "-o", "yaml")
    assert as_json.returncode == as_yaml.returncode == 0, as_json.stderr + as_yaml.stderr
    assert json.loads(as_json.stdout) == yaml.safe_load(as_yaml.stdout)


def test_dry_run_of_a_suite_without_tests_exits_5(tmp_path: Path) -> None:
    folder = _suite(tmp_path, {"test_a.py": PASSING})
    done = _kjob_pytest(
        folder, "--shards", "2", "--dry-run", "-o", "yaml", "--image", "i", "--", "-k", "nothing"
    )
    assert done.returncode == 5
    assert "no tests collected (7 deselected)" in done.stdout


@pytest.mark.parametrize("flags", [("--shards", "0"), ("--shards", "2", "--retries", "-1")])
def test_shards_and_retries_out_of_range_are_refused(tmp_path: Path, flags: tuple[str, ...]) -> None:
    done = _kjob_pytest(_suite(tmp_path, {}), *flags)
    assert done.returncode == 2
    assert done.stderr == "error: --shards must be at least 1 and --retries at least 0\n"


def test_split_without_durations_is_stable_round_robin_by_hash() -> None:
    ids = [f"t.py::test_{i}" for i in range(20)]
    shards = split(ids, 4)
    assert sorted(len(s) for s in shards) == [5, 5, 5, 5]
    assert sorted(n for s in shards for n in s) == sorted(ids)
    # Each shard keeps collection order; the split does not depend on the order given.
    assert all(s == sorted(s, key=ids.index) for s in shards)
    assert [set(s) for s in split(list(reversed(ids)), 4)] == [set(s) for s in shards]
    assert split(ids, 4) == shards


def test_split_with_durations_balances_the_shards() -> None:
    durations = {"t::a": 8.0, "t::b": 5.0, "t::c": 4.0, "t::d": 3.0, "t::e": 1.0, "t::f": 1.0}
    ids = list(durations)
    shards = split(ids, 2, durations)
    assert shards == [["t::a", "t::d"], ["t::b", "t::c", "t::e", "t::f"]]
    assert [sum(durations[n] for n in s) for s in shards] == [11.0, 11.0]
    # A test with no recorded duration weighs the median of the known ones.
    assert split([*ids, "t::new"], 2, durations) == [
        ["t::a", "t::e", "t::new"],
        ["t::b", "t::c", "t::d", "t::f"],
    ]


def test_split_refuses_zero_shards() -> None:
    with pytest.raises(ValueError, match="shards: must be at least 1, got 0"):
        split(["a"], 0)


def test_more_shards_than_tests_leaves_shards_empty(tmp_path: Path) -> None:
    assert sorted(len(shard) for shard in split(["a", "b"], 3)) == [0, 1, 1]
    folder = _suite(tmp_path, {"test_a.py": "def test_one():\n    pass\n"})
    done = _kjob_pytest(folder, "--shards", "3", "--junitxml", "m.xml")
    assert done.returncode == 0, done.stdout + done.stderr
    assert list(_cases(folder / "m.xml")) == ["test_a.py::test_one"]


def test_module_entry_point_refuses_unknown_modes() -> None:
    assert _pytest_shards.main(["what"]) == 4
