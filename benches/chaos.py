"""The long chaos run of issue "leak-free": random Job shapes ended by a random kill path at a
random moment, and hostile hosts (one ignoring SIGCHLD, one forking while its Job runs, nested
Jobs), then a scan for anything left behind.

    python benches/chaos.py --rounds 1000 [--seed 1] [--jobs 6] [--only forking,nested]

Prints rounds run, wrong statuses, processes leaked and files leaked (the goal is 0 for each).
The rounds are those of tests/test_chaos.py, which CI runs once per kill path and host.
"""

from __future__ import annotations

import argparse
import collections
import concurrent.futures
import random
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from test_chaos import HOSTILE, KILL_PATHS, Round, run_hostile, run_round  # noqa: E402

# Rounds must not hang on a child that never ends: each is bounded by its own timeouts.


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rounds", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--jobs", type=int, default=6, help="rounds run at once (they mostly wait)")
    kinds = sorted(KILL_PATHS) + list(HOSTILE)
    parser.add_argument(
        "--only",
        default=",".join(kinds),
        help=f"comma-separated kinds of round (default: all of {', '.join(kinds)})",
    )
    args = parser.parse_args()
    chosen = sorted(args.only.split(","))
    unknown = set(chosen) - set(kinds)
    if unknown:
        parser.error(f"unknown kinds: {', '.join(sorted(unknown))}")
    wrong: collections.Counter[str] = collections.Counter()
    leaked: collections.Counter[str] = collections.Counter()
    files: collections.Counter[str] = collections.Counter()
    started = time.monotonic()

    def one(i: int) -> tuple[int, Round]:
        rng = random.Random(args.seed * 1_000_003 + i)
        kind = rng.choice(chosen)
        return i, run_hostile(rng, kind) if kind in HOSTILE else run_round(rng, kind)

    with concurrent.futures.ThreadPoolExecutor(args.jobs) as pool:
        for done, (i, r) in enumerate(pool.map(one, range(args.rounds)), start=1):
            if r.wrong is not None or not r.uid:
                wrong[r.name] += 1
                print(f"round {i}: {r.name}: Job {r.uid!r}: wrong status: {r.wrong}", flush=True)
            if r.left:
                leaked[r.name] += len(r.left)
                print(f"round {i}: {r.name}: Job {r.uid!r} left processes {r.left}", flush=True)
            if r.files:
                files[r.name] += len(r.files)
                print(f"round {i}: {r.name}: Job {r.uid!r} left files {r.files}", flush=True)
            if done % 100 == 0:
                elapsed = time.monotonic() - started
                print(
                    f"{done} rounds, {sum(wrong.values())} wrong, {sum(leaked.values())} leaked processes, "
                    f"{sum(files.values())} leaked files, {elapsed:.0f} s",
                    flush=True,
                )
    print(
        f"rounds run: {args.rounds}; wrong statuses: {sum(wrong.values())} {dict(wrong)}; "
        f"processes leaked: {sum(leaked.values())} {dict(leaked)}; "
        f"files leaked: {sum(files.values())} {dict(files)}"
    )
    return 1 if wrong or leaked or files else 0


if __name__ == "__main__":
    sys.exit(main())
