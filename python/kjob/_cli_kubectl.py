"""The kubectl verbs of ``kjob``: get, describe, logs, wait, delete, patch and apply.

Their handlers, their parsers and their helpers, apart from ``cli.py`` (which keeps ``main``
and the commands that run Jobs) so that each file has one job. They reach Jobs through the
store (``Job.get``, ``Job.list``), whichever process owns them, and print what kubectl prints;
``_kubectl`` holds the formatting. Their exit statuses are kubectl's: 0, or 1 for any error
(``apply`` keeps 2 for an invalid manifest).

The exit codes, :class:`InvalidInput` and the input-file helpers live here too, and ``cli``
imports them: this module never imports ``cli``, which also runs as ``__main__`` (``python -m
kjob.cli``), where a second copy of its classes would escape its own ``except`` clauses.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as _dt
import signal
import sys
import time
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, NoReturn, TypeVar

import yaml

from . import _kubectl, _selectors
from ._apply import apply_document, patch_job
from ._job import Job, all_pods, job_from_normalized, job_spec
from ._kjob import KjobError
from ._types import Pod
from .manifest import KjobWarning, Manifests, load_manifests, normalize_manifest

# ---- shared with cli.py: exit codes, input errors, the -f files ----------------------------

EXIT_COMPLETE = 0
EXIT_FAILED = 1
EXIT_INVALID = 2
EXIT_INTERRUPTED = 130
EXIT_BROKEN_PIPE = 128 + signal.SIGPIPE

# How often pod logs are read while they are followed (log writes wake no watcher).
LOG_POLL_SECONDS = 0.1


class InvalidInput(Exception):
    """Input kjob refuses: printed as ``error: ...``, exit status 2."""


def invalid_message(where: str, manifest: Any, error: Exception) -> str:
    """kubectl's wording: ``The Job "pi" is invalid: <field error>``, one bullet per error
    when there are several, after the file's name."""
    name = ""
    if isinstance(manifest, dict) and isinstance(manifest.get("metadata"), dict):
        name = str(manifest["metadata"].get("name") or manifest["metadata"].get("generateName") or "")
    lines = str(error).splitlines() or [type(error).__name__]
    if lines[0].startswith(f"{where}: "):
        lines[0] = lines[0][len(where) + 2 :]
    head = f'{where}: The Job "{name}" is invalid: ' if name else f"{where}: "
    if len(lines) == 1:
        return head + lines[0]
    return head + "\n" + "\n".join(f"* {line}" for line in lines)


@contextlib.contextmanager
def printed_warnings() -> Iterator[None]:
    """Every KjobWarning raised inside, each time it is raised, printed when the block ends as
    kubectl prints a server's warnings (``Warning: ...``); other warnings as Python would."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", KjobWarning)
        try:
            yield
        finally:
            for w in caught:
                if issubclass(w.category, KjobWarning):
                    print(f"Warning: {w.message}", file=sys.stderr)
                else:
                    warnings.showwarning(w.message, w.category, w.filename, w.lineno)


def inputs(args: argparse.Namespace) -> str:
    """How messages name the input files."""
    return ", ".join("<stdin>" if f == "-" else str(f) for f in args.filename)


def load_files(args: argparse.Namespace) -> Manifests:
    """The documents of the ``-f`` files (folders, ``-``); an unreadable or unparsable one is
    :class:`InvalidInput` naming the file, as ``kjob run`` and ``kjob apply`` both say it."""
    where = inputs(args)
    with printed_warnings():
        try:
            return load_manifests(*(f if f == "-" else Path(f) for f in args.filename))
        except FileNotFoundError as e:
            raise InvalidInput(f"{e.filename or where}: no such file") from None
        except (ValueError, TypeError, OSError) as e:
            message = str(e).removeprefix("<text>: ")
            raise InvalidInput(message if message.startswith(where) else f"{where}: {message}") from None


def add_filename(p: argparse.ArgumentParser, required: bool = True) -> None:
    """``-f``, worded once for run, create, validate, simulate, timeline and apply."""
    p.add_argument(
        "-f",
        "--filename",
        required=required,
        action="append",
        metavar="FILE",
        help="a manifest file (YAML or JSON, several documents allowed), a folder (its *.yaml, "
        "*.yml and *.json files) or - for standard input; repeatable. ConfigMaps and Secrets "
        "among them feed the Jobs' env; other kinds are skipped with a warning",
    )


# ---- the kubectl verbs: get, describe, logs, wait, delete, patch, apply -------------------

_JOB_WORDS = ("jobs", "job", "jobs.batch", "job.batch")
_POD_WORDS = ("pods", "pod", "po")


class KubectlError(Exception):
    """An error a verb prints as kubectl does (the text is the whole line), exit status 1."""


def _not_found(kind: str, name: str) -> KubectlError:
    return KubectlError(f'Error from server (NotFound): {kind} "{name}" not found')


def _store_get(name: str, namespace: str) -> Job:
    try:
        return Job.get(name, namespace=namespace)
    except LookupError:  # kjob.NotFoundError
        raise _not_found("jobs.batch", name) from None


def _store_list(namespace: str | None, labels: str | None = None) -> list[Job]:
    return Job.list(namespace=namespace, labels=labels)


_Found = TypeVar("_Found")

# The resource a selector error names, as the API server words it.
_JOBS_RESOURCE = "batch/v1, Resource=jobs"
_PODS_RESOURCE = "/v1, Resource=pods"


def _each_named(names: list[str], find: Callable[[str], _Found]) -> tuple[list[_Found], list[str]]:
    """Each named object ``find`` finds, and the NotFound line of each it does not: kubectl
    goes on past a missing name, prints its error after the rest, and exits 1."""
    found: list[_Found] = []
    errors: list[str] = []
    for name in names:
        try:
            found.append(find(name))
        except KubectlError as e:
            errors.append(str(e))
    return found, errors


def _jobs_named_or_selected(args: argparse.Namespace, names: list[str]) -> tuple[list[Job], list[str]]:
    """The Jobs named (in ``-n``), or without names every Job of the namespace (all of them
    for ``-A``) that ``-l`` selects; with the NotFound lines of the missing names. A bad
    selector is refused before anything is listed."""
    if names:
        return _each_named(names, lambda name: _store_get(name, args.namespace))
    _selector(args, _JOBS_RESOURCE)
    return _store_list(_namespace(args), args.selector or None), []


def _print_errors(errors: list[str]) -> int:
    """The errors a verb met on its way, after what it printed; its exit status: 1 if any."""
    for error in errors:
        print(error, file=sys.stderr)
    return EXIT_FAILED if errors else EXIT_COMPLETE


def _job_invalid(name: str, text: str) -> str:
    """kubectl's ``The Job "NAME" is invalid: ...``, unless the message already says so."""
    return text if text.startswith("The Job") else f'The Job "{name}" is invalid: {text}'


def _namespace(args: argparse.Namespace) -> str | None:
    """The namespace the verb looks in: None for ``-A``."""
    return None if getattr(args, "all_namespaces", False) else args.namespace


def _selector(args: argparse.Namespace, resource: str) -> _selectors.Selector:
    """``-l``, parsed; a bad one is answered as the API server answers ``kubectl get -l``."""
    text = args.selector or ""
    try:
        return _selectors.parse_selector(text)
    except ValueError as e:
        raise KubectlError(
            f'Error from server (BadRequest): Unable to find "{resource}" that match label selector '
            f'"{text}", field selector "": {e}'
        ) from None


def _split_resources(words: list[str], allowed: tuple[str, ...]) -> tuple[str, list[str]]:
    """``job NAME...``, ``jobs``, or ``job/NAME...``: the resource word and the names."""
    if "/" not in words[0]:
        if words[0] not in allowed:
            raise KubectlError(f'error: the server doesn\'t have a resource type "{words[0]}"')
        if any("/" in word for word in words[1:]):
            raise KubectlError(
                "error: there is no need to specify a resource type as a separate argument when passing "
                "arguments in resource/name form (e.g. 'kjob get resource/<resource_name>' instead of "
                "'kjob get resource resource/<resource_name>'"
            )
        return words[0], words[1:]
    kind, names = "", []
    for word in words:
        this_kind, _, name = word.partition("/")
        if this_kind not in allowed or (kind and _same(kind) != _same(this_kind)):
            raise KubectlError(f'error: the server doesn\'t have a resource type "{this_kind}"')
        if not name:
            raise KubectlError("error: arguments in resource/name form must have a single resource and name")
        kind = kind or this_kind
        names.append(name)
    return kind, names


def _same(kind: str) -> tuple[str, ...]:
    return _JOB_WORDS if kind in _JOB_WORDS else _POD_WORDS


def _no_resources(namespace: str | None) -> str:
    return "No resources found" if namespace is None else f"No resources found in {namespace} namespace."


def _pods_of(jobs: list[Job], selector: _selectors.Selector) -> list[tuple[Job, Pod]]:
    """The pods of ``jobs`` that ``selector`` matches, by namespace and name as the API server
    lists them."""
    found = [(job, pod) for job in jobs for pod in _kubectl.job_pods(job) if selector.matches(pod.labels)]
    return sorted(found, key=lambda item: (item[0].namespace, item[1].name))


def _find_pod(name: str, namespace: str) -> tuple[Job, Pod]:
    for job in _store_list(namespace):
        for pod in _kubectl.job_pods(job):
            if pod.name == name:
                return job, pod
    raise _not_found("pods", name)


def _cmd_get(args: argparse.Namespace) -> int:
    """``kjob get jobs|pods [NAME...]``: kubectl's tables, ``-o`` formats and ``-w``."""
    kind, names = _split_resources(args.resource, _JOB_WORDS + _POD_WORDS)
    namespace = _namespace(args)
    pods = kind in _POD_WORDS
    if names and namespace is None:
        raise KubectlError("error: a resource cannot be retrieved by name across all namespaces")
    if names and args.selector:
        raise KubectlError("error: name cannot be provided when a selector is specified")
    selector = _selector(args, _PODS_RESOURCE if pods else _JOBS_RESOURCE)
    errors: list[str] = []

    def collect() -> tuple[list[Job], list[tuple[Job, Pod]]]:
        # Called again for each poll of -w: the errors are those of the last look.
        errors.clear()
        if not pods:
            jobs, missing = _jobs_named_or_selected(args, names)
            errors.extend(missing)
            return jobs, []
        jobs = _store_list(namespace)
        if not names:
            return jobs, _pods_of(jobs, selector)
        found, missing = _each_named(names, lambda name: _find_pod(name, args.namespace))
        errors.extend(missing)
        return jobs, found

    jobs, found_pods = collect()
    count = len(found_pods) if pods else len(jobs)
    single = len(names) == 1 and count == 1
    wide = args.output == "wide"
    if args.output in ("json", "yaml"):
        items = (
            [_kubectl.pod_object(j, p) for j, p in found_pods]
            if pods
            else [j.to_manifest(include_status=True) for j in jobs]
        )
        # A named object prints as itself; a listing, even of one, as kubectl's List.
        print(_kubectl.dump(items[0] if single else _kubectl.list_document(items), args.output), end="")
    elif args.output == "name":
        for line in (
            [f"pod/{p.name}" for _, p in found_pods] if pods else [f"job.batch/{j.name}" for j in jobs]
        ):
            print(line)
    elif count:
        table = (
            _kubectl.pod_rows(found_pods, wide=wide, namespace=namespace is None)
            if pods
            else _kubectl.job_rows(jobs, wide=wide, namespace=namespace is None)
        )
        print(table, flush=True)
    elif not errors and not args.watch:
        print(_no_resources(namespace), file=sys.stderr)
    if args.watch:
        _print_errors(errors)
        return _watch_table(args, collect, pods, namespace)
    return _print_errors(errors)


def _watch_table(
    args: argparse.Namespace,
    collect: Callable[[], tuple[list[Job], list[tuple[Job, Pod]]]],
    pods: bool,
    namespace: str | None,
) -> int:
    """``-w``: a row each time an object's row changes, polled every 0.1 s, until Ctrl-C;
    kubectl's interrupt handler then exits 1, and so does this."""
    wide = args.output == "wide"
    columns = (["NAMESPACE"] if namespace is None else []) + (
        _kubectl.POD_COLUMNS + (_kubectl.POD_WIDE_COLUMNS if wide else [])
        if pods
        else _kubectl.JOB_COLUMNS + (_kubectl.JOB_WIDE_COLUMNS if wide else [])
    )
    last: dict[str, list[str]] = {}
    widths: list[int] = []
    first = True
    shown = False
    try:
        while True:
            jobs, found = collect()
            now = _dt.datetime.now(_dt.timezone.utc)
            if pods:
                rows = {
                    f"{j.namespace}/{p.name}": _kubectl.pod_row(
                        p,
                        _kubectl.container_count(j),
                        wide=wide,
                        namespace=j.namespace if namespace is None else None,
                        now=now,
                    )
                    for j, p in found
                }
            else:
                rows = {
                    f"{j.namespace}/{j.name}": _kubectl.job_row(
                        j, wide=wide, namespace=namespace is None, now=now
                    )
                    for j in jobs
                }
            if first:
                # The table already printed; its column widths are kept for the rows to come.
                first = False
                last = rows
                shown = bool(rows)
                widths = [
                    max([len(columns[i]), *(len(r[i]) for r in rows.values())]) for i in range(len(columns))
                ]
            else:
                offset = 1 if namespace is None else 0
                for key, row in rows.items():
                    # AGE and DURATION tick every second: only a change of the rest is news.
                    if _without_clock(row, pods, offset) != _without_clock(last.get(key), pods, offset):
                        if not shown:
                            print(_watch_line(columns, widths), flush=True)
                            shown = True
                        print(_watch_line(row, widths), flush=True)
                last = rows
            time.sleep(_WATCH_POLL_SECONDS)
    except KeyboardInterrupt:
        return EXIT_FAILED


_WATCH_POLL_SECONDS = 0.1


def _without_clock(row: list[str] | None, pods: bool, offset: int) -> list[str] | None:
    """The cells of a row that do not change with the clock alone: without AGE (and a Job's
    DURATION), whose ticking is no news. ``offset`` is 1 when a NAMESPACE column leads."""
    if row is None:
        return None
    ticking = {offset + 4} if pods else {offset + 3, offset + 4}
    return [cell for i, cell in enumerate(row) if i not in ticking]


def _watch_line(row: list[str], widths: list[int]) -> str:
    """A row aligned to the table printed first (a wider cell pushes the rest right), with
    kubectl's padding of 3 and minimum column width of 6."""
    cells = [
        cell.ljust(max(widths[i] + 3 if i < len(widths) else 0, len(cell) + 3, 6))
        for i, cell in enumerate(row[:-1])
    ]
    return "".join(cells) + row[-1]


def _cmd_describe(args: argparse.Namespace) -> int:
    """``kjob describe job NAME...`` (or every Job of the namespace, or of ``-l``)."""
    kind, names = _split_resources(args.resource, _JOB_WORDS)
    jobs, errors = _jobs_named_or_selected(args, names)
    if not jobs and not names:
        print(_no_resources(_namespace(args)), file=sys.stderr)
    texts = [_kubectl.describe_job(job) for job in jobs]
    if texts:
        print("\n\n".join(texts), end="", flush=True)
    return _print_errors(errors)


def _logging_order(pods: list[Pod]) -> list[Pod]:
    """kubectl's ``ByLogging`` order, which ``logs job/NAME`` takes the first of: running pods
    first, then the older."""
    far = _dt.datetime.max.replace(tzinfo=_dt.timezone.utc)
    return sorted(pods, key=lambda p: (p.phase != "Running", p.creation_time or far))


def _log_targets(args: argparse.Namespace) -> list[tuple[Job, Pod]]:
    if args.selector:
        if args.target:
            raise KubectlError("error: only one of -l or a pod/job name may be given")
        selector = _selector(args, _PODS_RESOURCE)
        found = _pods_of(_store_list(args.namespace), selector)
        if not found:
            print(_no_resources(args.namespace), file=sys.stderr)
        return found
    if not args.target:
        raise KubectlError("error: expected 'logs [-f] [-p] (POD | TYPE/NAME) [-c CONTAINER]'.")
    kind, _, name = args.target.partition("/")
    if not name:
        return [_find_pod(kind, args.namespace)]
    if kind in _POD_WORDS:
        return [_find_pod(name, args.namespace)]
    if kind not in _JOB_WORDS:
        raise KubectlError(f'error: the server doesn\'t have a resource type "{kind}"')
    job = _store_get(name, args.namespace)
    pods = _logging_order(_kubectl.job_pods(job))
    if not pods:
        raise KubectlError(f"error: job.batch/{name} has no pods yet")
    if len(pods) > 1:
        print(f"Found {len(pods)} pods, using pod/{pods[0].name}", file=sys.stderr)
    return [(job, pods[0])]


def _tail(text: str, lines: int) -> str:
    if lines < 0:
        return text
    if lines == 0:
        return ""
    parts = text.splitlines(keepends=True)
    return "".join(parts[-lines:])


def _cmd_logs(args: argparse.Namespace) -> int:
    """``kjob logs job/NAME|POD|-l SEL``: a pod's output, ``-f`` following it to its end."""
    targets = _log_targets(args)
    # kubectl shows the last 10 lines of each pod a selector picks, all of a named one.
    tail = args.tail if args.tail is not None else (10 if args.selector else -1)
    prefix = bool(args.prefix)
    shown: dict[str, int] = {}
    if args.container is None:
        for job, pod in targets:
            _say_defaulted_container(job, pod)
    try:
        while True:
            running = False
            for job, pod in targets:
                container = args.container
                if args.follow:
                    # Looked at before reading: a pod that ended has then written its last line.
                    now = [p for p in all_pods(job) if p.name == pod.name]
                    running = running or bool(now and now[0].phase in ("Pending", "Running"))
                try:
                    text = job.logs(pod=pod.name, container=container)
                except KjobError as e:
                    raise KubectlError(f"error: {e}") from None
                if pod.name not in shown:
                    text, shown[pod.name] = _tail(text, tail), len(text)
                else:
                    text, shown[pod.name] = text[shown[pod.name] :], len(text)
                if prefix and text:
                    name = container or _default_container(job, pod)
                    text = "".join(
                        f"[pod/{pod.name}/{name}] {line}" for line in text.splitlines(keepends=True)
                    )
                if text:
                    sys.stdout.write(text)
                    sys.stdout.flush()
            if not (args.follow and running):
                return EXIT_COMPLETE
            time.sleep(LOG_POLL_SECONDS)
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED


def _default_container(job: Job, pod: Pod) -> str:
    return pod.annotations.get("kubectl.kubernetes.io/default-container") or job_spec(job)["containers"][0]


def _say_defaulted_container(job: Job, pod: Pod) -> None:
    """kubectl's note when ``-c`` is left out of a pod of several containers and no
    ``kubectl.kubernetes.io/default-container`` annotation names one."""
    spec = job_spec(job)
    containers, init = spec["containers"], spec["init_containers"]
    if "kubectl.kubernetes.io/default-container" in pod.annotations or (len(containers) == 1 and not init):
        return
    every = ", ".join([*containers, *(f"{name} (init)" for name in init)])
    print(f'Defaulted container "{containers[0]}" out of: {every}', file=sys.stderr)


def _wait_timeout(text: str) -> float:
    """``--timeout``, a Go duration, in seconds; kubectl takes a negative one as a week."""
    try:
        timeout = _kubectl.parse_duration(text)
    except ValueError as e:
        raise KubectlError(f'error: invalid argument "{text}" for "--timeout" flag: {e}') from None
    return 7 * 24 * 3600.0 if timeout < 0 else timeout


def _deleted_or_met(name: str, namespace: str, condition: str, first: bool) -> bool:
    """Whether the wait for one Job is over (printing ``condition met`` when it is).

    For ``delete``, kubectl's IsDeleted: a Job already gone at the first look is skipped
    without a word; one that goes while waited for is "condition met", as any condition is."""
    if condition == "delete":
        try:
            gone = _store_get(name, namespace).is_deleted
        except KubectlError:
            gone = True
        if gone and not first:
            print(f"job.batch/{name} condition met")
        return gone
    wanted, _, value = condition.removeprefix("condition=").partition("=")
    value = value or "True"
    met = any(
        c.type.lower() == wanted.lower() and c.status.lower() == value.lower()
        for c in _store_get(name, namespace).status.conditions
    )
    if met:
        print(f"job.batch/{name} condition met")
    return met


def _cmd_wait(args: argparse.Namespace) -> int:
    """``kjob wait --for=condition=X|delete job/NAME``: kubectl wait's messages and exits."""
    kind, names = _split_resources(args.resource, _JOB_WORDS)
    if not names:
        raise KubectlError("error: resource name may not be empty")
    timeout = _wait_timeout(args.timeout)
    condition = args.condition
    if condition != "delete" and not condition.startswith("condition="):
        raise KubectlError(f"error: unrecognized condition: {condition!r}")
    try:
        for name in names:
            # Each Job gets the whole timeout, as kubectl waits for each object in turn.
            deadline = time.monotonic() + timeout
            first = True
            while not _deleted_or_met(name, args.namespace, condition, first):
                first = False
                if time.monotonic() >= deadline:
                    raise KubectlError(f"error: timed out waiting for the condition on jobs/{name}")
                time.sleep(min(LOG_POLL_SECONDS, max(0.0, deadline - time.monotonic())))
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED
    return EXIT_COMPLETE


def _cmd_delete(args: argparse.Namespace) -> int:
    """``kjob delete job NAME...|--all|-l SEL``: each Job and its pods, waited for.

    ``--grace-period`` is taken for kubectl's sake: as on a cluster, where the garbage
    collector deletes a deleted Job's pods, each pod gets its template's
    ``terminationGracePeriodSeconds``."""
    kind, names = _split_resources(args.resource, _JOB_WORDS)
    if names and (args.all or args.selector):
        raise KubectlError("error: name cannot be provided when a selector is specified")
    if not names and not args.all and not args.selector:
        raise KubectlError("error: resource(s) were provided, but no name was specified")
    jobs, errors = _jobs_named_or_selected(args, names)
    if not jobs and not names:
        # kubectl delete says so on standard output, without the namespace.
        print("No resources found")
    for job in jobs:
        job.delete()
        print(f'job.batch "{job.name}" deleted', flush=True)
    return _print_errors(errors)


def _cmd_patch(args: argparse.Namespace) -> int:
    """``kjob patch job NAME --type=merge -p JSON``: the fields Kubernetes lets change."""
    kind, names = _split_resources(args.resource, _JOB_WORDS)
    if len(names) != 1:
        raise KubectlError("error: patch takes one Job: kjob patch job NAME -p PATCH")
    if args.type not in ("merge", "strategic"):
        raise KubectlError(f"error: --type {args.type}: kjob takes merge patches (--type=merge)")
    try:
        patch = yaml.safe_load(args.patch)
    except yaml.YAMLError as e:
        raise KubectlError(f'error: unable to parse "{args.patch}": {e}') from None
    if not isinstance(patch, dict):
        raise KubectlError(f'error: unable to parse "{args.patch}": not a JSON object')
    job = _store_get(names[0], args.namespace)
    try:
        verb = patch_job(job, patch)
    except ValueError as e:
        raise KubectlError(_job_invalid(job.name, str(e))) from None
    print(f"job.batch/{job.name} {verb}")
    return EXIT_COMPLETE


def _cmd_apply(args: argparse.Namespace) -> int:
    """``kjob apply -f``: each Job created, left unchanged or configured, and run by a
    detached controller; ``job.batch/NAME created|unchanged|configured`` each."""
    found = load_files(args)
    # Every document is checked before any is applied: an invalid file changes nothing.
    documents: list[tuple[dict[str, Any], str]] = []
    for manifest, job_where in found.jobs:
        manifest = dict(manifest)
        metadata = dict(manifest.get("metadata") or {})
        if args.namespace is not None:
            given = metadata.get("namespace")
            if given is not None and given != args.namespace:
                raise KubectlError(
                    f'error: the namespace from the provided object "{given}" does not match the namespace '
                    f"\"{args.namespace}\". You must pass '--namespace={given}' to perform this operation."
                )
            metadata["namespace"] = args.namespace
            manifest["metadata"] = metadata
        with printed_warnings():
            try:
                # Made (not started) to validate it as the API server would, before any is applied.
                normalized = normalize_manifest(manifest, strict=args.strict, where=job_where)
                job_from_normalized(normalized, None, None, None, env_sources=found.sources, where=job_where)
            except (ValueError, TypeError) as e:
                raise InvalidInput(invalid_message(job_where, manifest, e)) from None
        documents.append((manifest, job_where))
    code = EXIT_COMPLETE
    for manifest, job_where in documents:
        try:
            # The ConfigMaps and Secrets beside the Jobs feed their env, as for `kjob run -f`.
            job, verb = apply_document(manifest, job_where, found.sources)
        except ValueError as e:
            text = str(e)
            name = str((manifest.get("metadata") or {}).get("name", ""))
            print(_job_invalid(name, text), file=sys.stderr)
            code = EXIT_FAILED
            continue
        print(f"job.batch/{job.name} {verb}", flush=True)
    return code


KUBECTL_HANDLERS = (_cmd_get, _cmd_describe, _cmd_logs, _cmd_wait, _cmd_delete, _cmd_patch, _cmd_apply)


class _KubectlParser(argparse.ArgumentParser):
    """The parser of a kubectl verb: a usage error is kubectl's ``error: ...`` and exit 1."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_FAILED, f"error: {message}\nSee '{self.prog} --help' for usage.\n")


def _add_resource(p: argparse.ArgumentParser, text: str) -> None:
    """The ``RESOURCE`` words every verb but logs and apply takes: a kind, then names."""
    p.add_argument("resource", nargs="+", metavar="RESOURCE", help=text)


def _add_scope(p: argparse.ArgumentParser, all_namespaces: bool = True, selector: bool = True) -> None:
    """``-n`` (and ``-A``, ``-l`` where the verb lists Jobs), with the same words for each verb."""
    p.add_argument("-n", "--namespace", default="default", help="the namespace (default: default)")
    if all_namespaces:
        p.add_argument(
            "-A", "--all-namespaces", action="store_true", help="every namespace (a NAMESPACE column leads)"
        )
    if selector:
        p.add_argument(
            "-l",
            "--selector",
            default=None,
            metavar="SELECTOR",
            help="label selector, kubectl's syntax: a=b, a!=b, a, !a, 'a in (x,y)', 'a notin (x)'; "
            "commas between requirements mean AND",
        )


# What each verb's --help says: (help, usage, description).
_VERB_TEXTS: dict[str, dict[str, str]] = {
    "get": dict(
        help="list Jobs or pods, as kubectl get",
        usage="kjob get jobs|pods [NAME...] [-n NS|-A] [-l SELECTOR] [-o wide|yaml|json|name] [-w]",
        description="Print stored Jobs (kubectl's columns NAME STATUS COMPLETIONS DURATION AGE) or "
        "their pods (NAME READY STATUS RESTARTS AGE), whichever process runs them. -o wide adds "
        "columns; -o yaml|json prints the object (a List for several); -o name one line each; -w "
        "then prints a row whenever one changes, until Ctrl-C. Pods of one Job: -l job-name=NAME.",
    ),
    "describe": dict(
        help="show a Job in detail, as kubectl describe",
        usage="kjob describe job [NAME...] [-n NS|-A] [-l SELECTOR]",
        description="kubectl describe's layout: the Job's fields, Pods Statuses, the pod template "
        "and the Events table. Without NAME, every Job of the namespace (or of -l).",
    ),
    "logs": dict(
        help="print a pod's output, as kubectl logs",
        usage="kjob logs job/NAME|POD [-n NS] [-c CONTAINER] [-f] [--tail N] [--prefix] [-l SELECTOR]",
        description="The output of one pod: job/NAME takes the Job's first pod as kubectl does "
        "(running pods first, then the oldest); -l every matching pod (the last 10 lines of "
        "each, unless --tail); -f follows until the pod ends.",
    ),
    "wait": dict(
        help="wait for a Job's condition or deletion, as kubectl wait",
        usage="kjob wait --for=condition=complete|failed|delete job/NAME [-n NS] [--timeout 30s]",
        description="Wait until each Job has the condition (complete, failed, or any condition "
        "type, condition=TYPE=false for its False status) or is deleted. Prints "
        "`job.batch/NAME condition met` (a Job already gone: nothing); exit 1 with kubectl's message "
        "on timeout.",
    ),
    "delete": dict(
        help="delete Jobs and their pods, as kubectl delete",
        usage="kjob delete job NAME...|--all|-l SELECTOR [-n NS|-A] [--grace-period N]",
        description="Delete each Job: its pods are stopped (SIGTERM, SIGKILL after their "
        'terminationGracePeriodSeconds), its logs removed. Prints job.batch "NAME" deleted.',
    ),
    "patch": dict(
        help="change a Job's mutable fields, as kubectl patch",
        usage="kjob patch job NAME [-n NS] --type=merge -p JSON",
        description="A merge patch of the fields Kubernetes lets change (parallelism, completions "
        "of an elastic Indexed Job, suspend, activeDeadlineSeconds while suspended, ...); the rest "
        "is refused with Kubernetes' `field is immutable`.",
    ),
    "apply": dict(
        help="create or update Jobs from manifests and run them detached, as kubectl apply",
        usage="kjob apply -f FILE|DIR|- [-f ...] [-n NS]",
        description="Store each Job of the files and return at once: a detached kjob controller "
        "runs it, so it outlives the shell. An existing Job with the same spec is left unchanged; "
        "changed mutable fields are applied; changed immutable ones are refused. Prints "
        "job.batch/NAME created|unchanged|configured. Exit 2 for an invalid manifest.",
    ),
}


def _verb(sub: Any, handler: Callable[[argparse.Namespace], int]) -> argparse.ArgumentParser:
    """The parser of one verb, named after its handler (``_cmd_get``: get), which it runs."""
    name = handler.__name__.removeprefix("_cmd_")
    p: argparse.ArgumentParser = sub.add_parser(name, **_VERB_TEXTS[name])
    p.set_defaults(handler=handler)
    return p


def _add_get(sub: Any) -> None:
    get = _verb(sub, _cmd_get)
    _add_resource(get, "jobs, pods, then names (or job/NAME)")
    _add_scope(get)
    get.add_argument("-o", "--output", choices=["wide", "yaml", "json", "name"], default=None)
    get.add_argument("-w", "--watch", action="store_true", help="after the table, a row per change")


def _add_describe(sub: Any) -> None:
    describe = _verb(sub, _cmd_describe)
    _add_resource(describe, "job, then names (or job/NAME)")
    _add_scope(describe)


def _add_logs(sub: Any) -> None:
    logs = _verb(sub, _cmd_logs)
    logs.add_argument("target", nargs="?", default=None, metavar="job/NAME|POD")
    _add_scope(logs, all_namespaces=False)
    logs.add_argument("-c", "--container", default=None, help="the container (default: the pod's default)")
    logs.add_argument("-f", "--follow", action="store_true", help="stream the output until the pod ends")
    logs.add_argument("--tail", type=int, default=None, metavar="N", help="only the last N lines")
    logs.add_argument("--prefix", action="store_true", help="prefix each line [pod/NAME/CONTAINER]")


def _add_wait(sub: Any) -> None:
    wait = _verb(sub, _cmd_wait)
    _add_resource(wait, "job/NAME, or job NAME...")
    wait.add_argument("--for", dest="condition", required=True, metavar="CONDITION")
    wait.add_argument(
        "--timeout",
        default="30s",
        help="Go duration: 60s, 1m30s, 500ms; 0 checks once, negative waits a week",
    )
    _add_scope(wait, all_namespaces=False, selector=False)


def _add_delete(sub: Any) -> None:
    delete = _verb(sub, _cmd_delete)
    _add_resource(delete, "job, then names (or job/NAME)")
    delete.add_argument("--all", action="store_true", help="every Job of the namespace")
    _add_scope(delete)
    delete.add_argument(
        "--grace-period",
        type=int,
        default=-1,
        metavar="N",
        help="taken for kubectl's sake: pods get their own terminationGracePeriodSeconds, as the "
        "garbage collector gives them on a cluster",
    )


def _add_patch(sub: Any) -> None:
    patch = _verb(sub, _cmd_patch)
    _add_resource(patch, "job NAME, or job/NAME")
    patch.add_argument("-p", "--patch", required=True, metavar="JSON", help="the patch, JSON or YAML")
    patch.add_argument("--type", default="strategic", choices=["merge", "strategic", "json"])
    _add_scope(patch, all_namespaces=False, selector=False)


def _add_apply(sub: Any) -> None:
    apply = _verb(sub, _cmd_apply)
    add_filename(apply)
    apply.add_argument("--strict", action="store_true", help="refuse fields kjob cannot honour locally")
    # Not _add_scope's -n: a namespace given here only fills in documents that set none.
    apply.add_argument("-n", "--namespace", default=None, help="namespace for documents that set none")


def add_kubectl_verbs(sub: Any) -> None:
    """The parsers of get, describe, logs, wait, delete, patch and apply, added to ``sub``
    (``kjob``'s subparsers) in that order, which is the order ``kjob --help`` lists them in.
    Their usage errors are kubectl's (:class:`_KubectlParser`), the other commands' are not."""
    previous = sub._parser_class
    sub._parser_class = _KubectlParser
    try:
        for add in (_add_get, _add_describe, _add_logs, _add_wait, _add_delete, _add_patch, _add_apply):
            add(sub)
    finally:
        sub._parser_class = previous
