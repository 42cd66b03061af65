"""Resource hygiene over a long run: 100,000 pods through one interpreter (half subprocess pods,
half callable pods), printing open descriptors, threads and RSS before and after.

    python benches/soak.py [--pods 100000]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from test_hygiene import resources, run_batch  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--pods", type=int, default=100_000, help="total pods (half per kind)")
    parser.add_argument("--batch", type=int, default=5_000, help="pods per Job")
    args = parser.parse_args()
    run_batch(200)
    before = resources()
    started = time.monotonic()
    done = 0
    while done < args.pods:
        run_batch(args.batch)
        done += 2 * args.batch
    after = resources()
    print(f"pods: {done} in {time.monotonic() - started:.1f} s")
    print(
        f"open fds: {before[0]} -> {after[0]}; threads: {before[1]} -> {after[1]}; "
        f"RSS: {before[2]} KiB -> {after[2]} KiB ({after[2] - before[2]:+d} KiB)"
    )
    return 0 if after[0] <= before[0] and after[1] <= before[1] else 1


if __name__ == "__main__":
    sys.exit(main())
