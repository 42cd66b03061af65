"""`import kjob` loads only what every use needs (issue 14 §5): the modules that only some
calls need are imported by those calls. Structural, not timed: each test looks at
``sys.modules`` of a fresh interpreter."""

from __future__ import annotations

import subprocess
import sys

import pytest

# Costly to import and needed only by some calls: manifests (PyYAML, json, pathlib),
# callables (pickle, cloudpickle, the worker module), the shepherd and log folders
# (subprocess, secrets, tempfile, shutil), uuid (a started Job), signal (failure messages),
# dataclasses and the inspect it imports (the snapshot classes are hand-written; a callable's
# signature check imports inspect).
LAZY_MODULES = [
    "cloudpickle",
    "dataclasses",
    "inspect",
    "json",
    "kjob._worker",
    "pathlib",
    "pickle",
    "secrets",
    "shutil",
    "signal",
    "subprocess",
    "tempfile",
    "uuid",
    "yaml",
]


def _loaded_after(code: str) -> set[str]:
    """The modules loaded in a fresh interpreter after running ``code``."""
    probe = f"import sys\n{code}\nprint('\\n'.join(sys.modules))"
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout
    return set(out.split())


def test_import_kjob_loads_none_of_the_lazy_modules() -> None:
    loaded = _loaded_after("import kjob")
    assert "kjob" in loaded and "kjob._kjob" in loaded
    assert sorted(m for m in LAZY_MODULES if m in loaded) == []


def test_a_job_from_keywords_never_loads_yaml() -> None:
    code = (
        "import kjob\n"
        "status = kjob.Job(command=['true'], completions=2).run(timeout=60)\n"
        "assert status.succeeded == 2, status\n"
    )
    loaded = _loaded_after(code)
    assert "yaml" not in loaded
    # The store pickles what it records (issue 15); a command Job never needs the worker.
    assert "kjob._worker" not in loaded
    without_store = _loaded_after("import os\nos.environ['KJOB_STORE'] = '0'\n" + code)
    assert "yaml" not in without_store
    assert "pickle" not in without_store and "kjob._worker" not in without_store


@pytest.mark.parametrize(
    ("code", "module"),
    [
        (
            "kjob.Job.from_yaml('apiVersion: batch/v1\\nkind: Job\\nmetadata: {name: a}\\nspec: {template: "
            "{spec: {restartPolicy: Never, containers: [{name: c, command: [x]}]}}}')",
            "yaml",
        ),
        ("kjob.PodContext", "kjob._worker"),
        ("kjob.Job(command=['true'], image='busybox').to_yaml()", "yaml"),
    ],
)
def test_the_calls_that_need_a_lazy_module_load_it(code: str, module: str) -> None:
    assert module in _loaded_after(f"import kjob\n{code}")


def test_the_pytest_plugin_loads_nothing_beyond_kjob_and_pytest() -> None:
    # pytest imports kjob's plugin (entry point pytest11) in every session where kjob is
    # installed, used or not.
    without = _loaded_after("import pytest, kjob")
    assert sorted(_loaded_after("import pytest, kjob.pytest_plugin") - without) == ["kjob.pytest_plugin"]


def test_pod_context_is_still_a_public_name() -> None:
    import kjob
    from kjob import PodContext
    from kjob._worker import PodContext as WorkerPodContext

    assert PodContext is WorkerPodContext is kjob.PodContext
    assert "PodContext" in kjob.__all__ and "PodContext" in dir(kjob)
    with pytest.raises(AttributeError, match="has no attribute 'NoSuchName'"):
        kjob.NoSuchName  # noqa: B018
