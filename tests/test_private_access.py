"""No module of the package reaches into another module's private attributes (issue 14 §4).

A name with a leading underscore is private to the module that defines it; another module that
needs it asks that module through a module-level function (``_job.job_spec(job)``). This walks
the package's sources and lists every ``x._name`` where ``x`` is not ``self``/``cls``/``super()``
and ``_name`` is not defined in the module making the access."""

from __future__ import annotations

import ast
from pathlib import Path

import kjob

# The package under test (python/kjob, or the installed wheel's copy of it).
PACKAGE = Path(kjob.__file__).parent

# Underscore names of the standard library kjob uses on purpose: os._exit is documented (the
# way out of a forked child); _worker.py subclasses os._Environ to see a pod's writes to
# os.environ.
STDLIB = {("os", "_exit"), ("os", "_Environ")}


def _is_private(name: str) -> bool:
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


def _defined_names(tree: ast.AST) -> set[str]:
    """The private names a module defines: functions, classes, assigned names, attributes it
    sets (``self._x = ...``, ``job._x = ...``), dataclass fields, and ``__slots__`` entries."""
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
            names.add(node.id)
        elif isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Store):
            names.add(node.attr)
        elif isinstance(node, ast.alias):
            names.add(node.asname or node.name.split(".")[0])
    return {n for n in names if _is_private(n)}


def _is_own_object(value: ast.expr) -> bool:
    if isinstance(value, ast.Name):
        return value.id in ("self", "cls")
    return isinstance(value, ast.Call) and isinstance(value.func, ast.Name) and value.func.id == "super"


def private_accesses(source: str, module_name: str) -> list[str]:
    """``"<module>:<line>: <expr>._<name>"`` for every access to another module's private
    attribute in this source."""
    tree = ast.parse(source)
    own = _defined_names(tree)
    found: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Attribute) or not _is_private(node.attr):
            continue
        if _is_own_object(node.value) or node.attr in own:
            continue
        owner = ast.unparse(node.value)
        if (owner, node.attr) in STDLIB:
            continue
        found.append((node.lineno, f"{module_name}:{node.lineno}: {owner}.{node.attr}"))
    return [text for _, text in sorted(found)]


def _package_accesses() -> list[str]:
    found: list[str] = []
    for path in sorted(PACKAGE.glob("*.py")):
        found += private_accesses(path.read_text(), path.name)
    return found


def test_no_module_reaches_into_another_modules_private_attributes() -> None:
    assert _package_accesses() == []


def test_the_check_finds_foreign_private_attributes() -> None:
    source = (
        "import os\n"
        "class A:\n"
        "    def __init__(self, other):\n"
        "        self._mine = 1\n"
        "        self.__dict__\n"
        "        other._mine\n"
        "        other._theirs\n"
        "        super()._base()\n"
        "    def _helper(self): ...\n"
        "def f(job, status):\n"
        "    job._helper()\n"
        "    status.job._spec['x']\n"
        "    Job._from_normalized()\n"
        "    os._exit(0)\n"
        "    os._other()\n"
    )
    assert private_accesses(source, "m.py") == [
        "m.py:7: other._theirs",
        "m.py:12: status.job._spec",
        "m.py:13: Job._from_normalized",
        "m.py:15: os._other",
    ]
