"""ConfigMaps and Secrets as env sources (issue 13 §3): ``configMapKeyRef``, ``secretKeyRef``
and ``envFrom`` read from the objects in the same files, as the kubelet's
``makeEnvironmentVariables`` reads them; a missing reference keeps the pod ``Pending`` in
``CreateContainerConfigError``. Real YAML files, real processes."""

from __future__ import annotations

import base64
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest
import yaml

import kjob

CONFIG_MAP = {
    "apiVersion": "v1",
    "kind": "ConfigMap",
    "metadata": {"name": "cfg"},
    "data": {"MODE": "fast", "LEVEL": "3", "TEMPLATE": "$(MODE)"},
}
SECRET = {
    "apiVersion": "v1",
    "kind": "Secret",
    "metadata": {"name": "creds"},
    "type": "Opaque",
    "data": {"password": base64.b64encode(b"s3cr3t").decode(), "user": base64.b64encode(b"old").decode()},
    # The API server merges stringData over data.
    "stringData": {"user": "alice", "token": "plain text"},
}


def job(
    name: str,
    env: Sequence[Mapping[str, Any]] | None = None,
    env_from: Sequence[Mapping[str, Any]] | None = None,
    spec: Mapping[str, Any] | None = None,
    command: str = "env",
) -> dict[str, Any]:
    container: dict[str, Any] = {"name": "main", "image": "busybox", "command": ["sh", "-c", command]}
    if env is not None:
        container["env"] = env
    if env_from is not None:
        container["envFrom"] = env_from
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": name},
        "spec": {**(spec or {}), "template": {"spec": {"restartPolicy": "Never", "containers": [container]}}},
    }


def write(tmp_path: Path, *docs: object) -> Path:
    path = tmp_path / "manifest.yaml"
    path.write_text(yaml.safe_dump_all(docs))
    return path


def environment(j: kjob.Job) -> dict[str, str]:
    """The pod's environment, as `env` printed it."""
    status = j.run(timeout=30)
    assert status.succeeded == 1, j.logs()
    return dict(line.split("=", 1) for line in j.logs().splitlines() if "=" in line)


def test_config_map_key_ref_reads_one_key(tmp_path: Path) -> None:
    env = [{"name": "MY_MODE", "valueFrom": {"configMapKeyRef": {"name": "cfg", "key": "MODE"}}}]
    j = kjob.Job.from_yaml(write(tmp_path, CONFIG_MAP, job("cm", env)))
    seen = environment(j)
    assert seen["MY_MODE"] == "fast"
    assert "LEVEL" not in seen


def test_secret_key_ref_decodes_data_and_honours_string_data(tmp_path: Path) -> None:
    env = [
        {"name": "PASSWORD", "valueFrom": {"secretKeyRef": {"name": "creds", "key": "password"}}},
        {"name": "USER", "valueFrom": {"secretKeyRef": {"name": "creds", "key": "user"}}},
        {"name": "TOKEN", "valueFrom": {"secretKeyRef": {"name": "creds", "key": "token"}}},
    ]
    seen = environment(kjob.Job.from_yaml(write(tmp_path, SECRET, job("sec", env))))
    assert (seen["PASSWORD"], seen["USER"], seen["TOKEN"]) == ("s3cr3t", "alice", "plain text")


def test_env_from_with_prefix_and_env_overriding_it(tmp_path: Path) -> None:
    env_from: list[dict[str, Any]] = [
        {"configMapRef": {"name": "cfg"}},
        {"prefix": "DB_", "secretRef": {"name": "creds"}},
    ]
    env = [
        {"name": "LEVEL", "value": "overridden"},
        # A literal value expands variables from envFrom; values read from objects are verbatim.
        {"name": "EXPANDED", "value": "mode=$(MODE)"},
    ]
    seen = environment(kjob.Job.from_yaml(write(tmp_path, CONFIG_MAP, SECRET, job("from", env, env_from))))
    assert seen["MODE"] == "fast"
    assert seen["LEVEL"] == "overridden"
    assert seen["TEMPLATE"] == "$(MODE)"
    assert seen["EXPANDED"] == "mode=fast"
    assert (seen["DB_password"], seen["DB_user"], seen["DB_token"]) == ("s3cr3t", "alice", "plain text")


def test_optional_missing_references_leave_the_variable_unset(tmp_path: Path) -> None:
    env: list[dict[str, Any]] = [
        {"name": "A", "valueFrom": {"configMapKeyRef": {"name": "absent", "key": "k", "optional": True}}},
        {"name": "B", "valueFrom": {"configMapKeyRef": {"name": "cfg", "key": "absent", "optional": True}}},
        {"name": "C", "valueFrom": {"secretKeyRef": {"name": "absent", "key": "k", "optional": True}}},
        {"name": "D", "value": "set"},
    ]
    env_from = [{"secretRef": {"name": "absent", "optional": True}}]
    with _no_warnings():
        j = kjob.Job.from_yaml(write(tmp_path, CONFIG_MAP, job("opt", env, env_from)))
    seen = environment(j)
    assert "A" not in seen and "B" not in seen and "C" not in seen
    assert seen["D"] == "set"


def test_missing_reference_keeps_the_pod_pending_until_the_deadline(tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    env_from = [{"configMapRef": {"name": "cfg"}}]
    doc = job("waits", env_from=env_from, spec={"activeDeadlineSeconds": 1}, command=f"touch {marker}")
    path = write(tmp_path, doc)
    with pytest.warns(kjob.KjobWarning) as caught:
        j = kjob.Job.from_yaml(path)
    assert [str(w.message) for w in caught] == [
        f'{path}: job.batch/waits: configmap "cfg" not found: its pods will wait in '
        "CreateContainerConfigError (as on a cluster) until the ConfigMap or Secret is given with the "
        "Job (in the same files) or the reference is made optional"
    ]
    started = time.monotonic()
    j.start()
    try:
        time.sleep(0.3)
        (pod,) = j.pods()
        assert (pod.phase, pod.reason, pod.message) == (
            "Pending",
            "CreateContainerConfigError",
            'configmap "cfg" not found',
        )
        assert j.status.active == 1 and j.status.ready == 0
        # kubectl logs' answer for a container the kubelet could not make.
        with pytest.raises(kjob.KjobError) as waiting:
            j.logs(pod=pod.name)
        assert str(waiting.value) == (
            f'container "main" in pod "{pod.name}" is waiting to start: CreateContainerConfigError'
        )
        assert [(e.type, e.reason, e.message) for e in j.events() if e.type == "Warning"] == [
            ("Warning", "Failed", 'Error: configmap "cfg" not found')
        ]
        status = j.wait(timeout=10)
    finally:
        j.delete()
    assert time.monotonic() - started < 5
    failed = status.condition("Failed")
    assert failed is not None and failed.reason == "DeadlineExceeded"
    assert (status.failed, status.succeeded, status.active) == (1, 0, 0)
    # The container never ran.
    assert not marker.exists()


@pytest.mark.parametrize(
    ("env", "env_from", "message"),
    [
        ([], [{"secretRef": {"name": "creds"}}], 'secret "creds" not found'),
        (
            [{"name": "X", "valueFrom": {"configMapKeyRef": {"name": "cfg", "key": "nope"}}}],
            [],
            "couldn't find key nope in ConfigMap default/cfg",
        ),
        (
            [{"name": "X", "valueFrom": {"secretKeyRef": {"name": "cfg", "key": "MODE"}}}],
            [],
            'secret "cfg" not found',
        ),
    ],
)
def test_each_missing_reference_has_the_kubelets_message(
    tmp_path: Path, env: list[dict[str, object]], env_from: list[dict[str, object]], message: str
) -> None:
    with pytest.warns(kjob.KjobWarning, match=f"job.batch/m: {message}: its pods will wait"):
        j = kjob.Job.from_yaml(write(tmp_path, CONFIG_MAP, job("m", env, env_from)))
    j.start()
    try:
        deadline = time.monotonic() + 5
        while not j.pods() and time.monotonic() < deadline:
            time.sleep(0.02)
        (pod,) = j.pods()
        assert (pod.phase, pod.reason, pod.message) == ("Pending", "CreateContainerConfigError", message)
    finally:
        j.delete()


def test_references_resolve_in_the_jobs_namespace(tmp_path: Path) -> None:
    elsewhere = {**CONFIG_MAP, "metadata": {"name": "cfg", "namespace": "team-a"}}
    doc = job("ns", env_from=[{"configMapRef": {"name": "cfg"}}])
    doc["metadata"] = {"name": "ns", "namespace": "team-a"}
    assert environment(kjob.Job.from_yaml(write(tmp_path, elsewhere, doc)))["MODE"] == "fast"
    doc["metadata"] = {"name": "ns"}
    with pytest.warns(kjob.KjobWarning, match='configmap "cfg" not found'):
        kjob.Job.from_yaml(write(tmp_path, elsewhere, doc)).delete()


def test_all_from_yaml_resolves_every_job(tmp_path: Path) -> None:
    env = [{"name": "M", "valueFrom": {"configMapKeyRef": {"name": "cfg", "key": "MODE"}}}]
    jobs = kjob.Job.all_from_yaml(write(tmp_path, job("a", env), CONFIG_MAP, job("b", env)))
    assert [environment(j)["M"] for j in jobs] == ["fast", "fast"]


def test_a_folder_shares_its_config_maps_and_secrets(tmp_path: Path) -> None:
    (tmp_path / "10-config.yaml").write_text(yaml.safe_dump_all([CONFIG_MAP, SECRET]))
    env = [{"name": "P", "valueFrom": {"secretKeyRef": {"name": "creds", "key": "password"}}}]
    (tmp_path / "20-job.yaml").write_text(yaml.safe_dump(job("f", env, [{"configMapRef": {"name": "cfg"}}])))
    seen = environment(kjob.Job.from_yaml(tmp_path))
    assert (seen["P"], seen["MODE"]) == ("s3cr3t", "fast")


def test_bad_config_maps_and_secrets_are_refused_as_the_api_server_would(tmp_path: Path) -> None:
    bad_secret = {**SECRET, "data": {"password": "not base64!"}}
    path = write(tmp_path, bad_secret, job("x"))
    with pytest.raises(ValueError) as e:
        kjob.Job.from_yaml(path)
    assert (
        str(e.value)
        == f'{path}: Secret "creds": data[password]: Invalid value: illegal base64 data at input byte 3'
    )
    bad_key = {**CONFIG_MAP, "data": {"a/b": "x"}}
    path = write(tmp_path, bad_key, job("x"))
    with pytest.raises(ValueError) as e:
        kjob.Job.from_yaml(path)
    assert str(e.value) == (
        f'{path}: ConfigMap "cfg": data[a/b]: Invalid value: "a/b": a valid config key must consist of '
        "alphanumeric characters, '-', '_' or '.' (e.g. 'key.name',  or 'KEY_NAME',  or 'key-name', "
        "regex used for validation is '[-._a-zA-Z0-9]+')"
    )


def test_invalid_references_are_field_errors() -> None:
    env = [{"name": "X", "valueFrom": {"configMapKeyRef": {"name": "cfg", "key": ""}}}]
    env_from = [{"prefix": "9", "configMapRef": {"name": "cfg"}}, {}]
    with pytest.raises(ValueError) as e:
        kjob.Job.from_manifest(job("bad", env, env_from))
    p = "spec.template.spec.containers[0]"
    assert str(e.value).splitlines() == [
        f"{p}.env[0].valueFrom.configMapKeyRef.key: Required value",
        f'{p}.envFrom[0].prefix: Invalid value: "9": a valid environment variable name must consist of '
        "alphabetic characters, digits, '_', '-', or '.', and must not start with a digit (e.g. "
        "'my.env-name',  or 'MY_ENV.NAME',  or 'MyEnvName1', regex used for validation is "
        "'[-._a-zA-Z][-._a-zA-Z0-9]*')",
        f'{p}.envFrom: Invalid value: "": must specify one of: `configMapRef` or `secretRef`',
    ]


def test_the_references_survive_export(tmp_path: Path) -> None:
    env = [{"name": "X", "valueFrom": {"configMapKeyRef": {"name": "cfg", "key": "MODE", "optional": True}}}]
    env_from = [{"prefix": "P_", "secretRef": {"name": "creds"}}]
    j = kjob.Job.from_yaml(write(tmp_path, CONFIG_MAP, SECRET, job("exp", env, env_from)))
    container = j.to_manifest()["spec"]["template"]["spec"]["containers"][0]
    assert container["env"] == env
    assert container["envFrom"] == env_from
    j.delete()


def test_downward_api_env_keeps_working_beside_sources(tmp_path: Path) -> None:
    env = [
        {"name": "POD", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
        {"name": "NS", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}},
        {"name": "TEAM", "valueFrom": {"fieldRef": {"fieldPath": "metadata.labels['team']"}}},
        {"name": "NOTE", "valueFrom": {"fieldRef": {"fieldPath": "metadata.annotations['note']"}}},
        {
            "name": "IX",
            "valueFrom": {
                "fieldRef": {"fieldPath": "metadata.annotations['batch.kubernetes.io/job-completion-index']"}
            },
        },
        {"name": "M", "valueFrom": {"configMapKeyRef": {"name": "cfg", "key": "MODE"}}},
    ]
    doc = job("down", env, spec={"completionMode": "Indexed", "completions": 1})
    template = doc["spec"]["template"]
    template["metadata"] = {"labels": {"team": "blue"}, "annotations": {"note": "hi"}}
    seen = environment(kjob.Job.from_yaml(write(tmp_path, CONFIG_MAP, doc)))
    assert seen["POD"].startswith("down-0-")
    assert (seen["NS"], seen["TEAM"], seen["NOTE"], seen["IX"], seen["JOB_COMPLETION_INDEX"], seen["M"]) == (
        "default",
        "blue",
        "hi",
        "0",
        "0",
        "fast",
    )


def test_cli_warns_up_front_about_a_missing_reference(tmp_path: Path) -> None:
    env_from = [{"configMapRef": {"name": "cfg"}}]
    path = write(tmp_path, job("late", env_from=env_from, spec={"activeDeadlineSeconds": 1}, command="true"))
    warning = (
        f'Warning: {path}: job.batch/late: configmap "cfg" not found: its pods will wait in '
        "CreateContainerConfigError (as on a cluster) until the ConfigMap or Secret is given with the "
        "Job (in the same files) or the reference is made optional"
    )
    out = subprocess.run(
        [sys.executable, "-m", "kjob.cli", "validate", "-f", str(path)],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert out.returncode == 0
    assert out.stderr.splitlines() == [warning]
    out = subprocess.run(
        [sys.executable, "-m", "kjob.cli", "run", "-f", str(path)], capture_output=True, text=True, timeout=30
    )
    assert out.returncode == 1
    assert out.stderr.splitlines()[0] == warning
    assert (
        "error: job.batch/late failed: DeadlineExceeded: Job was active longer than specified deadline"
        in out.stderr
    )
    # Given the ConfigMap in a second file, the same Job runs.
    cfg = tmp_path / "cfg.yaml"
    cfg.write_text(yaml.safe_dump(CONFIG_MAP))
    out = subprocess.run(
        [sys.executable, "-m", "kjob.cli", "run", "-f", str(cfg), "-f", str(path)],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert out.returncode == 0, out.stderr
    assert out.stderr == ""


class _no_warnings:
    """Fails the test on any warning inside (pytest's ``filterwarnings = error`` would too,
    but this says so where it matters)."""

    def __enter__(self) -> None:
        import warnings

        self._catcher = warnings.catch_warnings()
        self._catcher.__enter__()
        warnings.simplefilter("error")

    def __exit__(self, *exc: object) -> None:
        self._catcher.__exit__(None, None, None)


def test_every_container_of_a_pod_reads_its_own_sources(tmp_path: Path) -> None:
    """Env sources and several containers together: each container's env is made from its own
    env/envFrom, and the sidecar-free second container sees the Secret, the first the ConfigMap."""
    doc = job("both", env_from=[{"configMapRef": {"name": "cfg"}}], command="echo MODE=$MODE")
    pod = doc["spec"]["template"]["spec"]
    pod["containers"].append(
        {
            "name": "second",
            "image": "busybox",
            "command": ["sh", "-c", "echo USER=$USER_NAME; echo MODE=${MODE:-unset}"],
            "env": [{"name": "USER_NAME", "valueFrom": {"secretKeyRef": {"name": "creds", "key": "user"}}}],
        }
    )
    j = kjob.Job.from_yaml(write(tmp_path, doc, CONFIG_MAP, SECRET))
    status = j.run(timeout=30)
    assert status.succeeded == 1
    (p,) = j.pods()
    assert j.logs(pod=p.name).splitlines() == ["MODE=fast"]
    assert j.logs(pod=p.name, container="second").splitlines() == ["USER=alice", "MODE=unset"]


def test_a_missing_reference_in_an_init_container_holds_the_whole_pod(tmp_path: Path) -> None:
    """The kubelet cannot make the init container: nothing of the pod starts (kjob holds the
    pod as a whole), and the Job's deadline still ends it."""
    marker = tmp_path / "ran"
    doc = job("held", spec={"activeDeadlineSeconds": 1}, command=f"touch {marker}")
    doc["spec"]["template"]["spec"]["initContainers"] = [
        {
            "name": "setup",
            "image": "busybox",
            "command": ["sh", "-c", f"touch {marker}"],
            "env": [{"name": "K", "valueFrom": {"secretKeyRef": {"name": "absent", "key": "k"}}}],
        }
    ]
    with pytest.warns(kjob.KjobWarning, match='secret "absent" not found'):
        j = kjob.Job.from_yaml(write(tmp_path, doc))
    status = j.run(timeout=10)
    (p,) = j.pods()
    assert (p.reason, p.message) == ("CreateContainerConfigError", 'secret "absent" not found')
    failed = status.condition("Failed")
    assert failed is not None and failed.reason == "DeadlineExceeded"
    assert not marker.exists()
