"""The long chaos run of issue "leak-free": random Job shapes ended by a random kill path at a
random moment, then a scan of /proc for any process carrying the Job's marker.

    python benches/chaos.py --rounds 1000 [--seed 1] [--jobs 6]

Prints rounds run and processes leaked (the goal is 0). The rounds are those of
tests/test_chaos.py, which CI runs once per kill path.
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

from test_chaos import KILL_PATHS, run_round  # noqa: E402

# Rounds must not hang on a child that never ends: each is bounded by its own timeouts.


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rounds", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--jobs", type=int, default=6, help="rounds run at once (they mostly wait)")
    args = parser.parse_args()
    leaked: collections.Counter[str] = collections.Counter()
    started = time.monotonic()

    def one(i: int) -> tuple[int, str, str, list[int]]:
        rng = random.Random(args.seed * 1_000_003 + i)
        path = rng.choice(sorted(KILL_PATHS))
        uid, left = run_round(rng, path)
        return i, path, uid, left

    with concurrent.futures.ThreadPoolExecutor(args.jobs) as pool:
        for done, (i, path, uid, left) in enumerate(pool.map(one, range(args.rounds)), start=1):
            if not uid or left:
                leaked[path] += len(left) or 1
                print(f"round {i}: {path}: Job {uid!r} left {left}", flush=True)
            if done % 100 == 0:
                elapsed = time.monotonic() - started
                print(f"{done} rounds, {sum(leaked.values())} leaked, {elapsed:.0f} s", flush=True)
    print(f"rounds run: {args.rounds}; processes leaked: {sum(leaked.values())} {dict(leaked)}")
    return 1 if leaked else 0


if __name__ == "__main__":
    sys.exit(main())
