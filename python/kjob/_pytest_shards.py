"""``kjob pytest``: a test suite as an Indexed Job, one pod per shard.

The node ids are collected once (a pytest subprocess with the user's arguments), split into
N shards, and an Indexed Job of N pods runs them: pod ``i`` runs pytest on shard ``i``, picked
by ``JOB_COMPLETION_INDEX``. ``backoffLimitPerIndex`` retries a failed shard alone, and a
``podFailurePolicy`` fails the index at once when pytest exits 2, 3 or 4 (interrupted,
internal error, usage error), which no retry would change. The shards' JUnit XML files are
merged into one; a test that failed in an attempt and passed in a later one is *flaky*.

The same module is the pod's entry point (``python -m kjob._pytest_shards shard -- ARGS``)
and the collector's (``... collect OUT -- ARGS``): both run pytest in-process with a small
plugin, so node ids travel as Python lists, never through a command line's length limit.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
import zlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# pytest's exit codes (pytest.ExitCode), which `kjob pytest` returns as pytest would.
OK, TESTS_FAILED, INTERRUPTED, INTERNAL_ERROR, USAGE_ERROR, NO_TESTS_COLLECTED = range(6)

#: The shard lists, inline: JSON ``[[nodeid, ...], ...]``, zlib-compressed and base85-encoded
#: (the way they travel in a manifest printed for a cluster).
SHARDS_ENV = "KJOB_PYTEST_SHARDS"
#: Locally, a file holding the same JSON (no size limit).
SHARDS_FILE_ENV = "KJOB_PYTEST_SHARDS_FILE"
#: Where a pod writes ``shard-I-attempt-A.xml``; unset in a cluster (the results are in the log).
XML_DIR_ENV = "KJOB_PYTEST_XML_DIR"
# The property each test case carries in a shard's XML, so that merging keys on node ids
# (JUnit's classname/name pair cannot be turned back into one).
_NODEID_PROPERTY = "kjob-nodeid"
# Kubernetes caps an env var's value at nothing, but Linux caps one string of a process's
# environment at 128 KiB (MAX_ARG_STRLEN): the inline shard list must stay under it.
_MAX_INLINE = 128 * 1024 - 64
DURATIONS_FILE = "pytest-durations.json"


# ---------------------------------------------------------------------------- the split


def split(nodeids: Sequence[str], shards: int, durations: dict[str, float] | None = None) -> list[list[str]]:
    """``nodeids`` in ``shards`` lists, each in collection order.

    With durations from a previous run, greedy longest-first bin packing: each test, longest
    first (ties by node id), goes to the shard with the least total so far (ties to the lowest
    index); a test with no recorded duration counts as the median of the known ones. Without
    any, round-robin over the tests sorted by a stable hash of their node id (crc32, the same
    in every interpreter), so a new test moves no other test to another shard.
    """
    if shards < 1:
        raise ValueError(f"shards: must be at least 1, got {shards}")
    order = {nodeid: i for i, nodeid in enumerate(nodeids)}
    buckets: list[list[str]] = [[] for _ in range(shards)]
    known = sorted(d for n, d in (durations or {}).items() if n in order)
    if known:
        default = known[len(known) // 2]
        weight = {n: (durations or {}).get(n, default) for n in nodeids}
        totals = [0.0] * shards
        for nodeid in sorted(nodeids, key=lambda n: (-weight[n], n)):
            target = min(range(shards), key=lambda i: (totals[i], i))
            buckets[target].append(nodeid)
            totals[target] += weight[nodeid]
    else:
        for i, nodeid in enumerate(sorted(nodeids, key=lambda n: (zlib.crc32(n.encode()), n))):
            buckets[i % shards].append(nodeid)
    return [sorted(bucket, key=order.__getitem__) for bucket in buckets]


def encode_shards(shards: list[list[str]]) -> str:
    import base64

    return base64.b85encode(zlib.compress(json.dumps(shards).encode(), 9)).decode()


def decode_shards(text: str) -> list[list[str]]:
    import base64

    shards: list[list[str]] = json.loads(zlib.decompress(base64.b85decode(text)))
    return shards


# ---------------------------------------------------------------------------- in the pods


class _Collector:
    """Plugin of the collecting subprocess: the selected node ids (after ``-k``/``-m``) and
    the durations of the previous run, from pytest's cache (``--cache-clear`` clears them)."""

    def __init__(self, out: str) -> None:
        self.out = out

    def pytest_collection_finish(self, session: Any) -> None:
        cache = getattr(session.config, "cache", None)
        folder = str(cache.mkdir("kjob")) if cache is not None else None
        durations: dict[str, float] = {}
        if folder is not None:
            try:
                durations = json.loads(Path(folder, DURATIONS_FILE).read_text())
            except (OSError, ValueError):
                durations = {}
        Path(self.out).write_text(
            json.dumps(
                {"nodeids": [item.nodeid for item in session.items], "cache": folder, "durations": durations}
            )
        )


class _NodeIds:
    """Plugin of a shard: every test case of its JUnit XML names its node id."""

    def pytest_collection_modifyitems(self, items: list[Any]) -> None:
        for item in items:
            item.user_properties.append((_NODEID_PROPERTY, item.nodeid))


def _reserve_attempt(folder: Path, index: int) -> int:
    """The number of this pod's attempt at its index: the first ``shard-I-attempt-A.xml``
    name not yet taken (claimed by creating the file, so that a pod that dies before pytest
    writes it still uses up its number). Attempts of one index never overlap in time."""
    attempt = 0
    while True:
        try:
            os.close(os.open(folder / f"shard-{index}-attempt-{attempt}.xml", os.O_CREAT | os.O_EXCL))
            return attempt
        except FileExistsError:
            attempt += 1


def _shard_main(pytest_args: list[str]) -> int:
    import pytest

    index = int(os.environ["JOB_COMPLETION_INDEX"])
    if os.environ.get(SHARDS_FILE_ENV):
        shards = decode_shards(Path(os.environ[SHARDS_FILE_ENV]).read_text())
    else:
        shards = decode_shards(os.environ[SHARDS_ENV])
    nodeids = shards[index]
    if not nodeids:
        # More shards than tests: pytest without node ids would run the whole suite.
        print(f"kjob pytest: shard {index} has no tests")
        return OK
    extra: list[str] = []
    if os.environ.get(XML_DIR_ENV):
        folder = Path(os.environ[XML_DIR_ENV])
        extra = ["--junitxml", str(folder / f"shard-{index}-attempt-{_reserve_attempt(folder, index)}.xml")]
    code = int(pytest.main([*nodeids, *extra, *pytest_args], plugins=[_NodeIds()]))
    # Every node id was collected with these arguments, so "no tests" only means that all of
    # them were deselected here as there (by -k, -m): nothing failed.
    return OK if code == NO_TESTS_COLLECTED else code


def _collect_main(out: str, pytest_args: list[str]) -> int:
    import pytest

    return int(pytest.main(["--collect-only", "-q", *pytest_args], plugins=[_Collector(out)]))


def main(argv: list[str]) -> int:
    """The pods' (``shard``) and the collector's (``collect OUT``) entry point."""
    split_at = argv.index("--") if "--" in argv else len(argv)
    own, pytest_args = argv[:split_at], argv[split_at + 1 :]
    if own[:1] == ["shard"]:
        return _shard_main(pytest_args)
    if own[:1] == ["collect"] and len(own) == 2:
        return _collect_main(own[1], pytest_args)
    print("usage: python -m kjob._pytest_shards shard|collect OUT -- PYTEST ARGS", file=sys.stderr)
    return USAGE_ERROR


# ---------------------------------------------------------------------------- the merge


@dataclass
class Outcome:
    """One test case of one attempt."""

    nodeid: str
    element: ET.Element
    attempt: int
    failed: bool


@dataclass
class Merged:
    """The merged ``<testsuites>`` and what it says."""

    root: ET.Element
    tests: int = 0
    failures: int = 0
    errors: int = 0
    skipped: int = 0
    #: (node id, attempts that failed before the one that passed)
    flaky: list[tuple[str, list[int]]] = field(default_factory=list)
    durations: dict[str, float] = field(default_factory=dict)


def _cases(path: Path, attempt: int) -> list[Outcome]:
    try:
        root = ET.parse(path).getroot()
    except (OSError, ET.ParseError):
        # A pod that died before pytest wrote its report: the pod's exit code tells the story.
        return []
    found = []
    for case in root.iter("testcase"):
        nodeid = next(
            (p.get("value", "") for p in case.iter("property") if p.get("name") == _NODEID_PROPERTY),
            f"{case.get('classname', '')}::{case.get('name', '')}",
        )
        failed = case.find("failure") is not None or case.find("error") is not None
        found.append(Outcome(nodeid, case, attempt, failed))
    return found


def _rerun_element(outcome: Outcome, flaky: bool) -> ET.Element:
    """Surefire's ``<flakyFailure>``/``<flakyError>`` (failed, then passed) and
    ``<rerunFailure>``/``<rerunError>`` (failed every time) for an earlier failed attempt,
    which CI servers (Jenkins, GitLab) read."""
    bad = outcome.element.find("failure")
    kind = "Failure"
    if bad is None:
        bad = outcome.element.find("error")
        kind = "Error"
    assert bad is not None
    element = ET.Element(("flaky" if flaky else "rerun") + kind)
    for key in ("message", "type"):
        if bad.get(key) is not None:
            element.set(key, bad.get(key, ""))
    element.text = bad.text
    stack = ET.SubElement(element, "stackTrace")
    stack.text = bad.text
    return element


def merge(xml_dir: Path) -> Merged:
    """The shards' ``shard-I-attempt-A.xml`` as one ``<testsuites>`` with one ``<testsuite
    name="pytest">``: each test once, as its last attempt ended, earlier failed attempts as
    surefire's rerun/flaky children."""
    runs: dict[str, list[Outcome]] = {}
    for path in sorted(xml_dir.glob("shard-*-attempt-*.xml")):
        attempt = int(path.stem.rsplit("-", 1)[1])
        for outcome in _cases(path, attempt):
            runs.setdefault(outcome.nodeid, []).append(outcome)
    root = ET.Element("testsuites", {"name": "kjob pytest"})
    suite = ET.SubElement(root, "testsuite", {"name": "pytest"})
    merged = Merged(root)
    total_time = 0.0
    for nodeid, outcomes in runs.items():
        outcomes.sort(key=lambda o: o.attempt)
        last = outcomes[-1]
        case = last.element
        earlier = [o for o in outcomes[:-1] if o.failed]
        for outcome in earlier:
            case.append(_rerun_element(outcome, flaky=not last.failed))
        if earlier and not last.failed:
            merged.flaky.append((nodeid, [o.attempt for o in earlier]))
        merged.tests += 1
        merged.failures += case.find("failure") is not None
        merged.errors += case.find("error") is not None
        merged.skipped += case.find("skipped") is not None
        seconds = float(case.get("time", "0") or 0)
        merged.durations[nodeid] = seconds
        total_time += seconds
        suite.append(case)
    for element in (root, suite):
        element.set("tests", str(merged.tests))
        element.set("failures", str(merged.failures))
        element.set("errors", str(merged.errors))
        element.set("skipped", str(merged.skipped))
        element.set("time", f"{total_time:.3f}")
    return merged


# ---------------------------------------------------------------------------- the Job


@dataclass
class Options:
    shards: int
    retries: int
    junitxml: str | None
    pytest_args: list[str]
    backoff_seconds: float | None = None
    name: str = "pytest"


def manifest(
    opts: Options, shards: list[list[str]], *, image: str | None, python: str, env: dict[str, str]
) -> dict[str, Any]:
    """The Indexed Job: N pods, all at once, ``backoffLimitPerIndex`` retries of a shard
    whose tests failed (exit 1), none of one whose pytest could not run them (exit 2-4)."""
    container: dict[str, Any] = {"name": "pytest"}
    if image is not None:
        container["image"] = image
    container["command"] = [python, "-m", "kjob._pytest_shards", "shard", "--", *opts.pytest_args]
    container["env"] = [{"name": k, "value": v} for k, v in env.items()]
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": opts.name},
        "spec": {
            "completionMode": "Indexed",
            "completions": len(shards),
            "parallelism": len(shards),
            "backoffLimitPerIndex": opts.retries,
            # Upstream validation requires a podFailurePolicy's FailIndex action to go with
            # backoffLimitPerIndex (pkg/apis/batch/validation, validatePodFailurePolicyRule).
            "podFailurePolicy": {
                "rules": [
                    {
                        "action": "FailIndex",
                        "onExitCodes": {
                            "operator": "In",
                            "values": [INTERRUPTED, INTERNAL_ERROR, USAGE_ERROR],
                        },
                    }
                ]
            },
            "template": {"spec": {"restartPolicy": "Never", "containers": [container]}},
        },
    }


@dataclass
class Collected:
    code: int
    nodeids: list[str]
    cache: str | None
    durations: dict[str, float]
    output: str


def collect(pytest_args: list[str]) -> Collected:
    """The node ids pytest selects with ``pytest_args``, from a subprocess (a collection
    imports the user's test modules, which must not stay imported here)."""
    with tempfile.TemporaryDirectory(prefix="kjob-pytest-") as tmp:
        out = Path(tmp, "collected.json")
        done = subprocess.run(
            [sys.executable, "-m", "kjob._pytest_shards", "collect", str(out), "--", *pytest_args],
            capture_output=True,
            text=True,
        )
        data: dict[str, Any] = json.loads(out.read_text()) if out.exists() else {}
    return Collected(
        done.returncode,
        list(data.get("nodeids", [])),
        data.get("cache"),
        dict(data.get("durations", {})),
        done.stdout + done.stderr,
    )


def dry_run(opts: Options, image: str, python: str = "python") -> dict[str, Any]:
    """The Indexed Job for a cluster: the shard lists travel inline in ``KJOB_PYTEST_SHARDS``
    (compressed JSON), each pod picks its own by ``JOB_COMPLETION_INDEX``; the image must
    hold the suite, pytest and kjob, and run in the suite's folder."""
    collected = collect(opts.pytest_args)
    if collected.code not in (OK, NO_TESTS_COLLECTED) or not collected.nodeids:
        raise Failed(
            collected.code or NO_TESTS_COLLECTED, collected.output or "kjob pytest: no tests collected\n"
        )
    shards = split(collected.nodeids, opts.shards, collected.durations)
    inline = encode_shards(shards)
    if len(inline) > _MAX_INLINE:
        raise Failed(
            USAGE_ERROR,
            f"kjob pytest: the shard lists take {len(inline)} bytes inline, over Linux's "
            f"{_MAX_INLINE} for one environment variable; narrow the selection",
        )
    return manifest(opts, shards, image=image, python=python, env={SHARDS_ENV: inline})


class Failed(Exception):
    def __init__(self, code: int, output: str) -> None:
        super().__init__(output)
        self.code = code
        self.output = output


def _say(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def run(opts: Options) -> int:
    """Collect, split, run the Indexed Job, merge; pytest's exit code."""
    from ._job import Job

    started = time.monotonic()
    collected = collect(opts.pytest_args)
    if collected.code not in (OK, NO_TESTS_COLLECTED):
        sys.stdout.write(collected.output)
        return collected.code
    if not collected.nodeids:
        print("kjob pytest: no tests collected")
        return NO_TESTS_COLLECTED
    shards = split(collected.nodeids, opts.shards, collected.durations)
    with tempfile.TemporaryDirectory(prefix="kjob-pytest-") as tmp:
        work = Path(tmp)
        shards_file = work / "shards"
        shards_file.write_text(encode_shards(shards))
        xml_dir = work / "xml"
        xml_dir.mkdir()
        env = {SHARDS_FILE_ENV: str(shards_file), XML_DIR_ENV: str(xml_dir)}
        job = Job.from_manifest(
            manifest(opts, shards, image=None, python=sys.executable, env=env),
            log_dir=work / "logs",
            backoff_initial_seconds=opts.backoff_seconds,
        )
        _say(
            f"kjob pytest: {len(collected.nodeids)} tests in {len(shards)} shards"
            + (" (balanced by the last run's durations)" if collected.durations else "")
        )
        try:
            job.start()
            status = job.wait()
        except KeyboardInterrupt:
            # As pytest does on Ctrl-C: no pod is left running, and the status is 2.
            job.delete()
            print("kjob pytest: interrupted")
            return INTERRUPTED
        except BaseException:
            job.delete()
            raise
        pods = sorted(job.pods(), key=lambda p: (p.index or 0, p.attempt or 0))
        for pod in pods:
            if pod.exit_code not in (OK, None):
                print(f"===== shard {pod.index}, attempt {pod.attempt}: exit code {pod.exit_code} =====")
                print(job.logs(pod=pod.name), end="", flush=True)
        job.delete()
        merged = merge(xml_dir)
        if opts.junitxml:
            ET.indent(merged.root)
            ET.ElementTree(merged.root).write(opts.junitxml, encoding="utf-8", xml_declaration=True)
        if collected.cache is not None:
            _save_durations(Path(collected.cache), collected.durations, merged.durations)
    code = _exit_code(pods, status.failed_indexes)
    for nodeid, attempts in merged.flaky:
        print(f"FLAKY {nodeid} (failed in attempt {', '.join(map(str, attempts))}, then passed)")
    passed = merged.tests - merged.failures - merged.errors - merged.skipped
    words = [f"{merged.failures} failed"] if merged.failures else []
    words.append(f"{passed} passed")
    words += [f"{n} {w}" for n, w in ((merged.skipped, "skipped"), (merged.errors, "errors")) if n]
    words += [f"{len(merged.flaky)} flaky"] if merged.flaky else []
    retried = sum(1 for pod in pods if pod.attempt > 0)
    elapsed = time.monotonic() - started
    print(
        f"kjob pytest: {', '.join(words)} in {len(shards)} shards"
        + (f" ({retried} retried)" if retried else "")
        + f", {elapsed:.2f}s (exit code {code})"
    )
    return code


def _exit_code(pods: list[Any], failed_indexes: str | None) -> int:
    """pytest's code for the whole: 0 when every shard's last attempt passed, otherwise the
    highest code of the last attempts of the failed shards (internal error 3 and usage error 4
    outrank interrupted 2, which outranks tests failed 1); a shard killed or crashed (not one
    of pytest's codes) counts as tests failed."""
    if not failed_indexes:
        return OK
    last: dict[int, int] = {}
    for pod in pods:
        if pod.exit_code is not None and pod.index is not None:
            last[pod.index] = pod.exit_code
    codes = [
        c if c in (INTERRUPTED, INTERNAL_ERROR, USAGE_ERROR) else TESTS_FAILED for c in last.values() if c
    ]
    return max(codes, default=TESTS_FAILED)


def _save_durations(folder: Path, previous: dict[str, float], measured: dict[str, float]) -> None:
    """The durations the next split balances by: this run's, and the last known ones of tests
    that did not run this time."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / DURATIONS_FILE
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps({**previous, **measured}, sort_keys=True))
        tmp.replace(path)
    except OSError:
        pass


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
