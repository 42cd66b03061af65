"""``kjob pytest --shards N`` against ``pytest -n N`` (pytest-xdist) on one generated suite.

The suite: ``--tests`` tests (default 400) in 20 files, test ``i`` sleeping
``(i * 37) % 51`` ms (0-50 ms, mixed, about 10 s in all), with an empty ``pytest.ini`` so it is
its own rootdir. Both tools run it in the same process of this script, interleaved round by
round so drift on the machine hits both alike, each timed as a whole command (collection,
workers, reports) from spawn to exit. Median of ``--runs`` (default 3) rounds after one
untimed warm-up round of each.

kjob's first round splits by hash (no durations yet); from the second on it balances by the
durations its previous run stored in ``.pytest_cache``, which is how it runs in practice.
``--no-durations`` deletes that cache before each kjob run, to time the hash split alone.

Plugin autoloading is off for both (``PYTEST_DISABLE_PLUGIN_AUTOLOAD=1``) apart from xdist,
loaded with ``-p xdist``, so neither pays for the environment's other plugins.

Usage::

    python benches/pytest_shards_bench.py [--tests 400] [--shards 4] [--runs 3] [--no-durations]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def make_suite(folder: Path, tests: int) -> float:
    """Writes the suite; returns the sum of its sleeps in seconds."""
    (folder / "pytest.ini").write_text("[pytest]\n")
    files = 20
    total = 0
    for f in range(files):
        lines = ["import time", ""]
        for i in range(f, tests, files):
            ms = (i * 37) % 51
            total += ms
            lines += [f"def test_{i}():", f"    time.sleep({ms / 1000})", ""]
        (folder / f"test_m{f:02d}.py").write_text("\n".join(lines))
    return total / 1000


def timed(command: list[str], cwd: Path) -> float:
    env = {**os.environ, "PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1"}
    start = time.perf_counter()
    done = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True)
    elapsed = time.perf_counter() - start
    if done.returncode != 0:
        sys.exit(f"{command} failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--tests", type=int, default=400)
    parser.add_argument("--shards", type=int, default=4)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--no-durations", action="store_true", help="kjob splits by hash every time")
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="kjob-pytest-bench-"))
    try:
        sleeps = make_suite(folder, args.tests)
        n = str(args.shards)
        tools = {
            "kjob pytest --shards": [sys.executable, "-m", "kjob.cli", "pytest", "--shards", n, "--", "-q"],
            "pytest -n (xdist)": [sys.executable, "-m", "pytest", "-p", "xdist", "-n", n, "-q"],
        }
        print(
            f"{args.tests} tests, {sleeps:.1f} s of sleeps in all; N = {n}; {os.cpu_count()} CPUs; "
            f"median of {args.runs} after a warm-up",
            flush=True,
        )
        times: dict[str, list[float]] = {name: [] for name in tools}
        for round_ in range(args.runs + 1):
            for name, command in tools.items():
                if args.no_durations and name.startswith("kjob"):
                    shutil.rmtree(folder / ".pytest_cache", ignore_errors=True)
                elapsed = timed(command, folder)
                if round_:
                    times[name].append(elapsed)
        for name, values in times.items():
            rounded = ", ".join(f"{v:.2f}" for v in values)
            print(f"{name:<22} median {statistics.median(values):6.2f} s   (runs: {rounded})")
        kjob, xdist = (statistics.median(v) for v in times.values())
        print(f"kjob / xdist wall time: {kjob / xdist:.2f}")
    finally:
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
