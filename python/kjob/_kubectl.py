"""kubectl's shapes for the verbs of ``kjob``: Go durations (``--timeout 1m30s``), the tables
of ``kubectl get jobs|pods``, ``kubectl describe job`` and the ``List`` of ``-o yaml|json``.

Everything here formats what a Job handle already holds; the verbs in ``cli.py`` find the
handles. The layouts follow kubectl's printers (``printJob``, ``printPod``) and describer
(``describeJob``), aligned as Go's ``text/tabwriter`` aligns them, so that a script written for
kubectl's output reads kjob's too."""

from __future__ import annotations

import datetime as _dt
import json
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from . import _export
from ._job import all_pods, created_at, job_spec, job_status_word
from ._types import Event, Pod

if TYPE_CHECKING:
    from ._job import Job

__all__ = [
    "container_count",
    "describe_job",
    "dump",
    "go_tabwriter",
    "job_pods",
    "job_row",
    "job_rows",
    "list_document",
    "parse_duration",
    "pod_object",
    "pod_row",
    "pod_rows",
    "pod_status_word",
    "render_table",
]

# ---- durations --------------------------------------------------------------------------

_UNITS = {
    "ns": 1e-9,
    "us": 1e-6,
    "µs": 1e-6,  # U+00B5 micro sign
    "μs": 1e-6,  # U+03BC Greek mu
    "ms": 1e-3,
    "s": 1.0,
    "m": 60.0,
    "h": 3600.0,
}


def parse_duration(text: str) -> float:
    """Go's ``time.ParseDuration`` (what kubectl's ``--timeout`` takes), in seconds:
    ``"60s"``, ``"1m30s"``, ``"500ms"``, ``"1.5h"``, ``"-1s"``, ``"0"``. Raises ``ValueError``
    with Go's words: ``time: invalid duration "x"``, ``time: missing unit in duration "5"``."""
    invalid = ValueError(f'time: invalid duration "{text}"')
    s = text
    negative = False
    if s and s[0] in "+-":
        negative = s[0] == "-"
        s = s[1:]
    if s == "0":
        return 0.0
    if not s:
        raise invalid
    total = 0.0
    while s:
        if not (s[0].isdigit() or s[0] == "."):
            raise invalid
        i = 0
        while i < len(s) and s[i].isascii() and s[i].isdigit():
            i += 1
        whole = s[:i]
        s = s[i:]
        fraction = ""
        if s.startswith("."):
            s = s[1:]
            i = 0
            while i < len(s) and s[i].isascii() and s[i].isdigit():
                i += 1
            fraction, s = s[:i], s[i:]
        if not whole and not fraction:
            raise invalid
        i = 0
        while i < len(s) and s[i] != "." and not (s[i].isascii() and s[i].isdigit()):
            i += 1
        unit, s = s[:i], s[i:]
        if not unit:
            raise ValueError(f'time: missing unit in duration "{text}"')
        if unit not in _UNITS:
            raise ValueError(f'time: unknown unit "{unit}" in duration "{text}"')
        total += float(f"{whole or '0'}.{fraction or '0'}") * _UNITS[unit]
    return -total if negative else total


# ---- alignment --------------------------------------------------------------------------


def go_tabwriter(text: str, *, minwidth: int = 0, padding: int = 2) -> str:
    """``text/tabwriter`` with a space pad character and no flags: each tab-terminated cell is
    padded to its column's width, a column being a run of consecutive lines that have a cell
    there (a line without it ends the run, so ``Pod Template:`` restarts the alignment). The
    text after a line's last tab is not a column cell and is written as is.

    kubectl describe writes through ``tabwriter(0, 8, 2, ' ', 0)``, kubectl get through
    ``tabwriter(6, 4, 3, ' ', 0)``."""
    lines = [line.split("\t") for line in text.split("\n")]
    out: list[str] = []
    widths: list[int] = []

    def write(first: int, end: int) -> None:
        for cells in lines[first:end]:
            parts = []
            for j, cell in enumerate(cells):
                parts.append(cell.ljust(widths[j]) if j < len(widths) else cell)
            out.append("".join(parts))

    def layout(first: int, end: int) -> None:
        column = len(widths)
        this = first
        while this < end:
            if column >= len(lines[this]) - 1:
                this += 1
                continue
            write(first, this)
            first = this
            width = minwidth
            while this < end and column < len(lines[this]) - 1:
                width = max(width, len(lines[this][column]) + padding)
                this += 1
            widths.append(width)
            layout(first, this)
            widths.pop()
            first = this
        write(first, end)

    layout(0, len(lines))
    return "\n".join(out)


def render_table(columns: Sequence[str], rows: Iterable[Sequence[str]]) -> str:
    """kubectl get's table: a header, cells tab-separated and aligned by its tabwriter."""
    text = "\n".join("\t".join(cells) for cells in [list(columns), *rows])
    return go_tabwriter(text, minwidth=6, padding=3)


def _since(t: _dt.datetime | None, now: _dt.datetime) -> str:
    """``translateTimestampSince``: the AGE of a time, ``<unknown>`` without one."""
    if t is None:
        return "<unknown>"
    return _export.human_duration((now - t).total_seconds())


def _now() -> _dt.datetime:
    return _dt.datetime.now(_dt.timezone.utc)


# ---- kubectl get jobs ---------------------------------------------------------------------

JOB_COLUMNS = ["NAME", "STATUS", "COMPLETIONS", "DURATION", "AGE"]
JOB_WIDE_COLUMNS = ["CONTAINERS", "IMAGES", "SELECTOR"]


def job_row(
    job: Job, *, wide: bool = False, namespace: bool = False, now: _dt.datetime | None = None
) -> list[str]:
    """One row of ``kubectl get jobs`` (``printJob``): NAME STATUS COMPLETIONS DURATION AGE,
    ``-o wide`` adding CONTAINERS IMAGES SELECTOR, ``-A`` a leading NAMESPACE."""
    now = now or _now()
    status = job.status
    spec = job_spec(job)
    duration = ""
    if status.start_time is not None:
        end = status.completion_time or now
        duration = _export.human_duration((end - status.start_time).total_seconds())
    row = [
        job.name,
        job_status_word(job, status),
        _export.completions_column(status.succeeded, spec["completions"], spec["parallelism"]),
        duration,
        _since(created_at(job), now),
    ]
    if wide:
        obj = job.to_manifest(include_status=True)
        containers = obj["spec"]["template"]["spec"].get("containers") or []
        row += [
            ",".join(str(c.get("name", "")) for c in containers),
            ",".join(str(c.get("image") or "<none>") for c in containers),
            ",".join(f"{k}={v}" for k, v in sorted(obj["spec"]["selector"]["matchLabels"].items())),
        ]
    if namespace:
        row.insert(0, job.namespace)
    return row


def job_rows(
    jobs: Sequence[Job], *, wide: bool = False, namespace: bool = False, now: _dt.datetime | None = None
) -> str:
    """The ``kubectl get jobs`` table of ``jobs``; ``now`` is when AGE counts to."""
    now = now or _now()
    columns = (["NAMESPACE"] if namespace else []) + JOB_COLUMNS + (JOB_WIDE_COLUMNS if wide else [])
    return render_table(columns, [job_row(job, wide=wide, namespace=namespace, now=now) for job in jobs])


# ---- kubectl get pods ---------------------------------------------------------------------

POD_COLUMNS = ["NAME", "READY", "STATUS", "RESTARTS", "AGE"]
POD_WIDE_COLUMNS = ["IP", "NODE", "NOMINATED NODE", "READINESS GATES"]


def pod_status_word(pod: Pod) -> str:
    """The STATUS column of ``kubectl get pods`` (``printPod``): the container's terminated
    reason (``Completed``, ``Error``, ``OOMKilled``, ...) or the pod's (``DeadlineExceeded``),
    ``Terminating`` for a running pod asked to stop, else the phase."""
    if pod.phase == "Succeeded":
        return "Completed"
    if pod.phase == "Failed":
        return pod.reason or "Error"
    if pod.deletion_time is not None:
        return "Terminating"
    return pod.phase


def pod_row(
    pod: Pod,
    containers: int,
    *,
    wide: bool = False,
    namespace: str | None = None,
    now: _dt.datetime | None = None,
) -> list[str]:
    """One row of ``kubectl get pods``; ``containers`` is how many the pod template has."""
    now = now or _now()
    ready = containers if pod.phase == "Running" and pod.deletion_time is None else 0
    row = [
        pod.name,
        f"{ready}/{containers}",
        pod_status_word(pod),
        str(pod.restart_count),
        _since(pod.creation_time or pod.start_time, now),
    ]
    if wide:
        # A local pod has no IP of its own; NODE is where it ran.
        row += ["<none>", pod.node_name or "<none>", "<none>", "<none>"]
    if namespace is not None:
        row.insert(0, namespace)
    return row


def job_pods(job: Job) -> list[Pod]:
    """The pods of ``job`` that ``kubectl get pods`` lists: those not yet deleted with it."""
    return [] if job.is_deleted else all_pods(job)


def container_count(job: Job) -> int:
    """How many containers a pod of ``job`` has (READY's denominator)."""
    return len(job_spec(job)["containers"])


def pod_rows(
    pods: Sequence[tuple[Job, Pod]],
    *,
    wide: bool = False,
    namespace: bool = False,
    now: _dt.datetime | None = None,
) -> str:
    """The ``kubectl get pods`` table of ``pods``, each with its Job."""
    now = now or _now()
    columns = (["NAMESPACE"] if namespace else []) + POD_COLUMNS + (POD_WIDE_COLUMNS if wide else [])
    rows = [
        pod_row(pod, container_count(job), wide=wide, namespace=job.namespace if namespace else None, now=now)
        for job, pod in pods
    ]
    return render_table(columns, rows)


def pod_object(job: Job, pod: Pod) -> dict[str, Any]:
    """A pod as ``kubectl get pod -o yaml`` shows the fields kjob knows of it."""
    template = job.to_manifest(include_status=True)["spec"]["template"]
    metadata: dict[str, Any] = {
        "name": pod.name,
        "namespace": job.namespace,
        "labels": dict(pod.labels),
        "ownerReferences": [
            {
                "apiVersion": "batch/v1",
                "kind": "Job",
                "name": job.name,
                "uid": job.uid,
                "controller": True,
                "blockOwnerDeletion": True,
            }
        ],
    }
    if pod.annotations:
        metadata["annotations"] = dict(pod.annotations)
    if pod.creation_time is not None:
        metadata["creationTimestamp"] = _export.rfc3339(pod.creation_time)
    if pod.deletion_time is not None:
        metadata["deletionTimestamp"] = _export.rfc3339(pod.deletion_time)
    spec = dict(template.get("spec") or {})
    if pod.node_name:
        spec["nodeName"] = pod.node_name
    status: dict[str, Any] = {"phase": pod.phase}
    if pod.reason:
        status["reason"] = pod.reason
    if pod.message:
        status["message"] = pod.message
    if pod.conditions:
        status["conditions"] = [
            {"type": c.type, "status": c.status, "reason": c.reason, "message": c.message}
            for c in pod.conditions
        ]
    if pod.start_time is not None:
        status["startTime"] = _export.rfc3339(pod.start_time)
    return {"apiVersion": "v1", "kind": "Pod", "metadata": metadata, "spec": spec, "status": status}


# ---- -o yaml|json -----------------------------------------------------------------------


def list_document(items: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Several objects as kubectl prints them: a ``v1`` ``List``."""
    return {"apiVersion": "v1", "items": list(items), "kind": "List", "metadata": {"resourceVersion": ""}}


def dump(document: Mapping[str, Any], output: str) -> str:
    """``document`` as ``-o json`` (four-space indent, as kubectl) or ``-o yaml`` prints it."""
    if output == "json":
        return json.dumps(document, indent=4) + "\n"
    import yaml

    # Through JSON: objects shared inside the document would otherwise become YAML aliases.
    return str(yaml.safe_dump(json.loads(json.dumps(document)), sort_keys=False))


# ---- kubectl describe job -----------------------------------------------------------------

_MAX_ANNOTATION = 140


def _rfc1123z(t: _dt.datetime) -> str:
    """Go's ``time.RFC1123Z`` in local time: ``Mon, 02 Jan 2006 15:04:05 -0700``."""
    return t.astimezone().strftime("%a, %d %b %Y %H:%M:%S %z")


def _labels_lines(title: str, labels: Mapping[str, str]) -> list[str]:
    """``printLabelsMultiline``: ``Title:\\tk=v`` then ``\\tk=v`` per further label, sorted."""
    if not labels:
        return [f"{title}:\t<none>"]
    keys = sorted(labels)
    return [f"{title}:\t{keys[0]}={labels[keys[0]]}"] + [f"\t{k}={labels[k]}" for k in keys[1:]]


def _annotation_lines(title: str, annotations: Mapping[str, str]) -> list[str]:
    """``printAnnotationsMultiline``: ``key: value``; a long or multi-line value on lines of
    its own; the last-applied configuration left out, as kubectl does."""
    keys = sorted(k for k in annotations if k != "kubectl.kubernetes.io/last-applied-configuration")
    if not keys:
        return [f"{title}:\t<none>"]
    lines: list[str] = []
    for i, key in enumerate(keys):
        head = f"{title}:\t" if i == 0 else "\t"
        value = annotations[key].removesuffix("\n")
        if len(value) + len(key) + 2 > _MAX_ANNOTATION or "\n" in value:
            lines.append(f"{head}{key}:")
            for part in value.split("\n"):
                short = part if len(part) <= _MAX_ANNOTATION - 2 else part[: _MAX_ANNOTATION - 2] + "..."
                lines.append(f"\t  {short}")
        else:
            lines.append(f"{head}{key}: {value}")
    return lines


def _env_lines(container: Mapping[str, Any]) -> list[str]:
    """``describeContainerEnvVars`` (and ``EnvFrom`` before it), at the container's indent."""
    lines: list[str] = []
    env_from = container.get("envFrom") or []
    if env_from:
        lines.append("    Environment Variables from:")
        for source in env_from:
            kind = "ConfigMap" if "configMapRef" in source else "Secret"
            ref = source.get("configMapRef" if kind == "ConfigMap" else "secretRef") or {}
            optional = "true" if ref.get("optional") else "false"
            prefix = source.get("prefix")
            what = f"{kind} with prefix '{prefix}'" if prefix else kind
            lines.append(f"      {ref.get('name', '')}\t{what}\tOptional: {optional}")
    env = container.get("env") or []
    lines.append("    Environment:" + ("" if env else "\t<none>"))
    for var in env:
        name = var.get("name", "")
        source = var.get("valueFrom")
        if source is None:
            for i, part in enumerate(str(var.get("value", "")).split("\n")):
                lines.append(f"      {name}:\t{part}" if i == 0 else f"      \t{part}")
        elif "fieldRef" in source:
            ref = source["fieldRef"]
            lines.append(f"      {name}:\t ({ref.get('apiVersion', 'v1')}:{ref.get('fieldPath', '')})")
        elif "secretKeyRef" in source or "configMapKeyRef" in source:
            secret = "secretKeyRef" in source
            ref = source["secretKeyRef" if secret else "configMapKeyRef"]
            optional = "true" if ref.get("optional") else "false"
            where = (
                f"in secret '{ref.get('name', '')}'" if secret else f"of config map '{ref.get('name', '')}'"
            )
            lines.append(
                f"      {name}:\t<set to the key '{ref.get('key', '')}' {where}>\tOptional: {optional}"
            )
        else:
            lines.append(f"      {name}:\t<set from {', '.join(sorted(source))}>")
    return lines


def _container_lines(label: str, containers: Sequence[Mapping[str, Any]]) -> list[str]:
    """``describeContainers`` for a pod template (no statuses)."""
    lines = [f"  {label}:"]
    for c in containers:
        lines.append(f"   {c.get('name', '')}:")
        lines.append(f"    Image:\t{c.get('image', '')}")
        ports = [p for p in c.get("ports") or [] if isinstance(p, Mapping)]
        port_text = ", ".join(f"{p.get('containerPort')}/{p.get('protocol', 'TCP')}" for p in ports)
        host_text = ", ".join(f"{p.get('hostPort', 0)}/{p.get('protocol', 'TCP')}" for p in ports)
        lines.append(
            f"    Ports:\t{port_text}" if "," in port_text else f"    Port:\t{port_text or '<none>'}"
        )
        lines.append(
            f"    Host Ports:\t{host_text}"
            if "," in host_text
            else f"    Host Port:\t{host_text or '<none>'}"
        )
        for title, key in (("Command", "command"), ("Args", "args")):
            words = c.get(key) or []
            if words:
                lines.append(f"    {title}:")
                for word in words:
                    lines.extend(f"      {part}" for part in str(word).split("\n"))
        lines.extend(_env_lines(c))
        mounts = c.get("volumeMounts") or []
        lines.append("    Mounts:" + ("" if mounts else "\t<none>"))
        for m in mounts:
            mode = "ro" if m.get("readOnly") else "rw"
            lines.append(f"      {m.get('mountPath', '')} from {m.get('name', '')} ({mode})")
    return lines


def _events_lines(events: Sequence[Event], now: _dt.datetime) -> list[str]:
    """``DescribeEvents``: identical events (type, reason, message) folded into one row
    ``AGE (xN over FIRST)``, as the API server counts repeats; ``From`` is the Job
    controller."""
    if not events:
        return ["Events:\t<none>"]
    folded: dict[tuple[str, str, str], list[Event]] = {}
    for e in events:
        folded.setdefault((e.type, e.reason, e.message.strip()), []).append(e)
    lines = ["Events:", "  Type\tReason\tAge\tFrom\tMessage", "  ----\t------\t----\t----\t-------"]
    ordered = sorted(folded.items(), key=lambda item: item[1][0].time or now)
    for (kind, reason, message), same in ordered:
        first = _since(same[0].time, now)
        age = first if len(same) == 1 else f"{_since(same[-1].time, now)} (x{len(same)} over {first})"
        lines.append(f"  {kind}\t{reason}\t{age}\tjob-controller\t{message}")
    return lines


def _cap_indexes(indexes: str, soft_limit: int = 50) -> str:
    """``capIndexesListOrNone``: the list cut at the first comma past 50 characters."""
    if not indexes:
        return "<none>"
    cut = indexes.find(",", soft_limit)
    return indexes if cut == -1 else indexes[: cut + 1] + "..."


def describe_job(job: Job, now: _dt.datetime | None = None) -> str:
    """``kubectl describe job``: the Job's fields, its pod template and its events."""
    now = now or _now()
    obj = job.to_manifest(include_status=True)
    metadata, spec = obj["metadata"], obj["spec"]
    status = job.status
    selector = ",".join(f"{k}={v}" for k, v in sorted(spec["selector"]["matchLabels"].items()))
    lines = [f"Name:\t{job.name}", f"Namespace:\t{job.namespace}", f"Selector:\t{selector}"]
    lines += _labels_lines("Labels", metadata.get("labels") or {})
    lines += _annotation_lines("Annotations", metadata.get("annotations") or {})
    lines.append(f"Parallelism:\t{spec['parallelism']}")
    completions = spec.get("completions")
    lines.append(f"Completions:\t{completions if completions is not None else '<unset>'}")
    lines.append(f"Completion Mode:\t{spec['completionMode']}")
    lines.append(f"Suspend:\t{'true' if spec.get('suspend') else 'false'}")
    lines.append(f"Backoff Limit:\t{spec['backoffLimit']}")
    if spec.get("ttlSecondsAfterFinished") is not None:
        lines.append(f"TTL Seconds After Finished:\t{spec['ttlSecondsAfterFinished']}")
    if status.start_time is not None:
        lines.append(f"Start Time:\t{_rfc1123z(status.start_time)}")
    if status.completion_time is not None:
        lines.append(f"Completed At:\t{_rfc1123z(status.completion_time)}")
    if status.start_time is not None and status.completion_time is not None:
        seconds = (status.completion_time - status.start_time).total_seconds()
        lines.append(f"Duration:\t{_export.human_duration(seconds)}")
    if spec.get("activeDeadlineSeconds") is not None:
        lines.append(f"Active Deadline Seconds:\t{spec['activeDeadlineSeconds']}s")
    lines.append(
        f"Pods Statuses:\t{status.active} Active ({status.ready} Ready) / {status.succeeded} Succeeded / "
        f"{status.failed} Failed"
    )
    if spec["completionMode"] == "Indexed":
        lines.append(f"Completed Indexes:\t{_cap_indexes(status.completed_indexes)}")
    template = spec.get("template") or {}
    template_meta = template.get("metadata") or {}
    pod_spec = template.get("spec") or {}
    lines.append("Pod Template:")
    lines += _labels_lines("  Labels", template_meta.get("labels") or {})
    if template_meta.get("annotations"):
        lines += _annotation_lines("  Annotations", template_meta["annotations"])
    if pod_spec.get("serviceAccountName"):
        lines.append(f"  Service Account:\t{pod_spec['serviceAccountName']}")
    if pod_spec.get("initContainers"):
        lines += _container_lines("Init Containers", pod_spec["initContainers"])
    lines += _container_lines("Containers", pod_spec.get("containers") or [])
    volumes = pod_spec.get("volumes") or []
    if volumes:
        lines.append("  Volumes:")
        lines += [f"   {v.get('name', '')}:" for v in volumes]
    else:
        lines.append("  Volumes:\t<none>")
    if pod_spec.get("priorityClassName"):
        lines.append(f"  Priority Class Name:\t{pod_spec['priorityClassName']}")
    lines += _labels_lines("  Node-Selectors", pod_spec.get("nodeSelector") or {})
    tolerations = pod_spec.get("tolerations") or []
    lines.append("  Tolerations:\t" + (", ".join(_toleration(t) for t in tolerations) or "<none>"))
    lines += _events_lines(job.events(), now)
    return go_tabwriter("\n".join(lines) + "\n")


def _toleration(t: Mapping[str, Any]) -> str:
    """``key=value:Effect`` as kubectl abbreviates a toleration."""
    text = str(t.get("key", ""))
    if t.get("value"):
        text += f"={t['value']}"
    elif t.get("operator") == "Exists" and not text:
        text = "op=Exists"
    if t.get("effect"):
        text += f":{t['effect']}"
    if t.get("tolerationSeconds") is not None:
        text += f" for {t['tolerationSeconds']}s"
    return text
