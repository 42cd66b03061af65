"""``kjob``: run Kubernetes Job manifests on this machine, in the spirit of kubectl.

Exit codes of ``kjob run``: 0 the Job completed, 1 it failed, 2 invalid input, 130 interrupted
(Ctrl-C deletes the Job first, so nothing is left running).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import TextIO

from ._job import Job
from ._types import JobStatus

EXIT_COMPLETE = 0
EXIT_FAILED = 1
EXIT_INVALID = 2
EXIT_INTERRUPTED = 130

# How often the foreground loop looks for changes to report.
_POLL_SECONDS = 0.05


def _summary(status: JobStatus) -> str:
    parts = [
        f"active={status.active}",
        f"succeeded={status.succeeded}",
        f"failed={status.failed}",
    ]
    if status.terminating:
        parts.append(f"terminating={status.terminating}")
    if status.completed_indexes:
        parts.append(f"completedIndexes={status.completed_indexes}")
    return " ".join(parts)


class _LogFollower:
    """Streams new complete lines of every pod's log, prefixed ``[pod-name]`` like
    ``kubectl logs --prefix``."""

    def __init__(self, job: Job, out: TextIO) -> None:
        self._job = job
        self._out = out
        self._offsets: dict[str, int] = {}
        self._partial: dict[str, bytes] = {}

    def poll(self, final: bool = False) -> None:
        for pod in self._job.pods():
            path = Path(pod.log_path)
            try:
                with path.open("rb") as f:
                    f.seek(self._offsets.get(pod.name, 0))
                    data = f.read()
            except FileNotFoundError:
                continue
            self._offsets[pod.name] = self._offsets.get(pod.name, 0) + len(data)
            data = self._partial.pop(pod.name, b"") + data
            lines = data.split(b"\n")
            rest = lines.pop()
            if rest and final:
                lines.append(rest)
            elif rest:
                self._partial[pod.name] = rest
            for line in lines:
                text = line.decode("utf-8", errors="replace")
                self._out.write(f"[{pod.name}] {text}\n")
        self._out.flush()


def _run(args: argparse.Namespace) -> int:
    out = sys.stdout
    try:
        job = Job.from_yaml(
            args.filename,
            log_dir=args.log_dir,
            backoff_initial_seconds=args.backoff_initial_seconds,
            backoff_max_seconds=args.backoff_max_seconds,
        )
    except (ValueError, TypeError, OSError) as e:
        message = str(e)
        if not message.startswith(args.filename):
            message = f"{args.filename}: {message}"
        print(f"error: {message}", file=sys.stderr)
        return EXIT_INVALID
    follower = _LogFollower(job, out) if args.logs else None
    try:
        job.start()
        print(f"job.batch/{job.name} created", file=out, flush=True)
        deadline = None if args.timeout is None else time.monotonic() + args.timeout
        last_line = ""
        seen_conditions: set[tuple[str, str]] = set()
        while True:
            status = job.status
            line = _summary(status)
            if line != last_line:
                print(f"job.batch/{job.name}: {line}", file=out, flush=True)
                last_line = line
            for c in status.conditions:
                key = (c.type, c.status)
                if key not in seen_conditions:
                    seen_conditions.add(key)
                    print(
                        f"job.batch/{job.name}: condition {c.type}={c.status} "
                        f"reason={c.reason}: {c.message}",
                        file=out,
                        flush=True,
                    )
            if follower is not None:
                follower.poll(final=status.is_finished)
            if status.is_finished:
                break
            if deadline is not None and time.monotonic() >= deadline:
                print(f"error: job.batch/{job.name} did not finish within {args.timeout} s",
                      file=sys.stderr)
                job.delete()
                return EXIT_FAILED
            try:
                job.wait(timeout=_POLL_SECONDS)
            except TimeoutError:
                pass
        return EXIT_COMPLETE if status.is_complete else EXIT_FAILED
    except KeyboardInterrupt:
        print(f"\ninterrupted: deleting job.batch/{job.name}", file=sys.stderr, flush=True)
        job.delete()
        return EXIT_INTERRUPTED
    finally:
        if not job.is_deleted:
            job.delete()


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="kjob",
        description="Run Kubernetes batch/v1 Jobs as local processes.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    run = sub.add_parser(
        "run",
        help="run a Job manifest in the foreground",
        description=(
            "Run the Job in FILE (the same YAML `kubectl apply` accepts) on this machine, "
            "printing a line whenever its status changes. Exit status: 0 Complete, "
            "1 Failed, 2 invalid input, 130 interrupted (the Job is deleted first)."
        ),
    )
    run.add_argument("-f", "--filename", required=True, help="the Job manifest (YAML)")
    run.add_argument("--timeout", type=float, default=None,
                     help="give up (delete the Job, exit 1) after this many seconds")
    run.add_argument("--logs", action="store_true",
                     help="stream the pods' output, each line prefixed with the pod name")
    run.add_argument("--log-dir", default=None,
                     help="keep pod logs in this folder (default: a temporary one)")
    run.add_argument("--backoff-initial-seconds", type=float, default=10.0,
                     help="delay before the first replacement of a failed pod (default 10)")
    run.add_argument("--backoff-max-seconds", type=float, default=600.0,
                     help="cap of the doubling replacement delay (default 600)")
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if args.command == "run":
        return _run(args)
    parser.print_help()
    return EXIT_INVALID


if __name__ == "__main__":
    sys.exit(main())
