"""What ``import kjob`` costs a fresh interpreter (issue 14 §5: at most 30 ms on the project
machine).

Each round starts two fresh interpreters, ``python -c "pass"`` and ``python -c "import
kjob"``, in alternating order, so drift on a busy machine hits both alike; the cost is the
median of the kjob runs minus the median of the bare ones. ``--base PATH`` times a second
copy of the package (another checkout's ``python/`` folder, its extension built or copied
in) in the same rounds, for a before/after ratio. Then one ``-X importtime`` run lists the
modules that cost most, by their own time and by time including what they import.

Byte-code caches are used (``PYTHONDONTWRITEBYTECODE`` is dropped for the children), as an
installed package has them; ``--no-pyc`` keeps the variable, so every run compiles kjob's
sources, which costs several times more.

Usage::

    python benches/import_bench.py [--runs 21] [--top 15] [--base /tmp/base/python] [--json PATH]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from typing import Any


def _env(path: str | None, pyc: bool) -> dict[str, str]:
    env = dict(os.environ)
    if pyc:
        # Byte-code caches are what an installed package has: without them every import
        # compiles kjob's sources anew (the warm-up round writes them).
        env.pop("PYTHONDONTWRITEBYTECODE", None)
    if path is not None:
        env["PYTHONPATH"] = path
    return env


def _run(code: str, path: str | None, pyc: bool) -> float:
    env = _env(path, pyc)
    started = time.perf_counter()
    subprocess.run([sys.executable, "-c", code], env=env, check=True)
    return time.perf_counter() - started


def timings(runs: int, base: str | None, pyc: bool) -> dict[str, list[float]]:
    """Wall times of fresh interpreters, per variant, over ``runs`` interleaved rounds."""
    variants: dict[str, tuple[str, str | None]] = {"bare": ("pass", None), "kjob": ("import kjob", None)}
    if base is not None:
        variants["base"] = ("import kjob", base)
    out: dict[str, list[float]] = {name: [] for name in variants}
    names = list(variants)
    for round_ in range(runs + 1):
        # Alternate the order each round; round 0 only warms the caches (.pyc files, pages).
        order = names if round_ % 2 else list(reversed(names))
        for name in order:
            code, path = variants[name]
            elapsed = _run(code, path, pyc)
            if round_:
                out[name].append(elapsed)
    return out


def importtime_offenders(top: int, pyc: bool) -> list[tuple[str, int, int]]:
    """(module, own µs, cumulative µs) of one ``-X importtime`` run, costliest first."""
    proc = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", "import kjob"],
        env=_env(None, pyc),
        check=True,
        capture_output=True,
        text=True,
    )
    rows = []
    for line in proc.stderr.splitlines():
        if not line.startswith("import time:") or "imported package" in line:
            continue
        own, cumulative, name = (part.strip() for part in line[len("import time:") :].split("|"))
        if own.isdigit():
            rows.append((name, int(own), int(cumulative)))
    return sorted(rows, key=lambda r: r[2], reverse=True)[:top]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runs", type=int, default=21, help="fresh interpreters per variant (>= 10)")
    parser.add_argument("--top", type=int, default=15, help="modules to list from -X importtime")
    parser.add_argument("--base", help="a python/ folder holding another kjob to compare with")
    parser.add_argument(
        "--no-pyc", action="store_true", help="honour PYTHONDONTWRITEBYTECODE (compile every import)"
    )
    parser.add_argument("--json", help="also write the figures to this file")
    args = parser.parse_args()
    pyc = not args.no_pyc
    if args.runs < 10:
        parser.error("--runs must be at least 10")

    times = timings(args.runs, args.base, pyc)
    bare = statistics.median(times["bare"])
    report: dict[str, Any] = {"runs": args.runs, "bare_ms": bare * 1e3, "pyc": pyc}
    print("byte-code caches:", "on" if pyc else "off (sources compiled on every import)")
    print(f"python -c pass            median {bare * 1e3:7.1f} ms  ({args.runs} runs)")
    for name in ("kjob", "base"):
        if name not in times:
            continue
        median = statistics.median(times[name])
        cost = (median - bare) * 1e3
        report[f"{name}_import_ms"] = cost
        label = "import kjob" if name == "kjob" else "import kjob (--base)"
        print(f"{label:25s} median {median * 1e3:7.1f} ms  -> import costs {cost:6.1f} ms")
    if "base_import_ms" in report and report["kjob_import_ms"] > 0:
        ratio = report["base_import_ms"] / report["kjob_import_ms"]
        report["speedup"] = ratio
        print(f"base / this: {ratio:.2f}x")

    offenders = importtime_offenders(args.top, pyc)
    report["importtime"] = [{"module": m, "own_us": o, "cumulative_us": c} for m, o, c in offenders]
    print(f"\n-X importtime, top {args.top} by cumulative time (µs):")
    print(f"{'cumulative':>10} {'own':>8}  module")
    for module, own, cumulative in offenders:
        print(f"{cumulative:10d} {own:8d}  {module}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(report, f, indent=2)


if __name__ == "__main__":
    main()
