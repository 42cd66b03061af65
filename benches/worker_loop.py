"""The callable worker's own cost per pod: ``kjob._worker.Worker`` fed ``--pods`` task frames of
a trivial Indexed Job over a pipe, with no runtime behind it (a forked feeder writes the
frames and reads the reports). Prints wall and CPU time per pod of the worker loop.

    python benches/worker_loop.py [--pods 100000] [--runs 3]
"""

from __future__ import annotations

import argparse
import os
import pickle
import statistics
import struct
import sys
import tempfile
import threading
import time

import cloudpickle  # type: ignore[import-untyped, unused-ignore]

from kjob import _worker


def f(i: int) -> int:
    return i * i


def frame(kind: bytes, body: bytes) -> bytes:
    return struct.pack("<I", len(body) + 1) + kind + body


def frames(pods: int, log_path: str) -> bytes:
    # As _job._Callable.init_payload makes it (the pods' whole environment, the working directory).
    init = {
        "name": "bench",
        "uid": "u",
        "indexed": True,
        "sys_path": [],
        "cwd": os.getcwd(),
        "environ": dict(os.environ),
        "fn": cloudpickle.dumps(f),
        "args": cloudpickle.dumps(((), {})),
    }
    path = log_path.encode()
    out = [frame(b"J", struct.pack("<II", 1, len(path)) + path + pickle.dumps(init))]
    for i in range(pods):
        out.append(frame(b"T", struct.pack("<IQqI", 1, i + 1, i, 0) + f"bench-{i}-abcde".encode()))
    return b"".join(out)


def count_reports(fd: int, pods: int, tasks_w: int) -> None:
    """Reads the worker's reports until every pod is reported done, then closes the worker's
    input (end of input ends its loop)."""
    done, pending = 0, b""
    while done < pods:
        chunk = os.read(fd, 1 << 16)
        if not chunk:
            raise RuntimeError("the worker stopped early")
        data, pos = pending + chunk, 0
        while len(data) - pos >= 5:
            (size,) = struct.unpack_from("<I", data, pos)
            if len(data) - pos - 4 < size:
                break
            done += data[pos + 4 : pos + 5] == b"D"
            pos += 4 + size
        pending = data[pos:]
    os.close(tasks_w)


def one_run(pods: int, log_dir: str) -> tuple[float, float]:
    tasks_r, tasks_w = os.pipe()
    reports_r, reports_w = os.pipe()
    data = frames(pods, os.path.join(log_dir, "worker.log"))
    # The feeder is a forked process (this one has no other thread yet), so that it does not
    # compete with the worker loop for this interpreter's GIL.
    pid = os.fork()
    if pid == 0:
        try:
            os.close(tasks_r)
            os.close(reports_w)
            writer = threading.Thread(target=os.write, args=(tasks_w, data))
            writer.start()
            count_reports(reports_r, pods, tasks_w)
            writer.join()
        finally:
            os._exit(0)
    os.close(tasks_w)
    os.close(reports_r)
    saved_out, saved_err = os.dup(1), os.dup(2)
    _worker._track_environment()  # as the worker's main() does
    wall, cpu = time.perf_counter(), time.process_time()
    try:
        _worker.Worker(tasks_r, reports_w).serve()  # returns at end of input
    finally:
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        os.dup2(saved_out, 1)
        os.dup2(saved_err, 2)
        for fd in (saved_out, saved_err, tasks_r, reports_w):
            os.close(fd)
        os.waitpid(pid, 0)
    return wall / pods, cpu / pods


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--pods", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="kjob-worker-loop-") as log_dir:
        runs = [one_run(args.pods, log_dir) for _ in range(args.runs)]
    wall = statistics.median(r[0] for r in runs)
    cpu = statistics.median(r[1] for r in runs)
    print(
        f"worker loop, {args.pods:,} trivial pods, median of {args.runs}: "
        f"{wall * 1e6:.2f} us/pod wall, {cpu * 1e6:.2f} us/pod CPU ({1 / wall:,.0f} pods/s)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
