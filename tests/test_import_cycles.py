"""No import cycles among the modules of streammem/, connectors/ and bench/, and the layers of
streammem/ import only downwards.

Every import counts, also those inside functions or under ``TYPE_CHECKING``: moving an import
into a function hides a cycle from Python, not from the reader.
"""

from __future__ import annotations

import ast
import graphlib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("streammem", "connectors", "bench")


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported(path: Path, modules: set[str]) -> set[str]:
    """The project modules that ``path`` imports anywhere in its body."""
    name = module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: from the package, up level - 1 packages
                anchor = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                base = f"{anchor}.{base}" if base else anchor
            # ``from bench import report`` imports a module, ``from streammem import MemAE``
            # a name of the package
            found.update(
                f"{base}.{alias.name}" if f"{base}.{alias.name}" in modules else base
                for alias in node.names
            )
    return (found & modules) - {name}


def import_graph() -> dict[str, set[str]]:
    paths = [path for package in PACKAGES for path in (ROOT / package).rglob("*.py")]
    modules = {module_name(path) for path in paths}
    return {module_name(path): imported(path, modules) for path in paths}


def test_the_graph_sees_imports_inside_functions():
    graph = import_graph()
    # cli.py imports the daemon inside the command that runs it
    assert "streammem.service.daemon" in graph["streammem.cli"]
    assert "connectors.kafka" in graph["streammem.service.daemon"]


def test_no_module_imports_itself_through_others():
    try:
        graphlib.TopologicalSorter(import_graph()).prepare()
    except graphlib.CycleError as err:
        raise AssertionError(f"import cycle: {' -> '.join(err.args[1])}") from None


#: The layers, lowest first; a module belongs to the layer of its longest matching prefix and
#: imports only from its own layer or those below. The package root is the public API: the
#: service builds detectors through it, nothing below may.
LAYERS = (
    ("streammem.checks", "streammem.reprs", "streammem.persistence", "streammem.evaluation"),
    ("streammem.nn",),
    ("streammem.learning",),
    ("streammem.features",),
    ("streammem.interface", "streammem.explain"),
    ("streammem.detectors",),
    ("streammem.alerts",),
    ("streammem.windows", "streammem.series"),
    ("streammem", "streammem.demo", "streammem.metrics", "connectors"),
    ("streammem.service",),
    ("streammem.cli", "streammem.__main__"),
)


def layer_of(module: str) -> int | None:
    matches = [
        (len(prefix), level)
        for level, prefixes in enumerate(LAYERS)
        for prefix in prefixes
        if module == prefix or module.startswith(prefix + ".")
    ]
    return max(matches)[1] if matches else None


def test_the_layers_import_only_downwards():
    graph = {m: deps for m, deps in import_graph().items() if not m.startswith("bench")}
    unplaced = sorted(m for m in graph if layer_of(m) is None)
    assert not unplaced, f"modules in no layer (add them to LAYERS): {unplaced}"
    upwards = sorted(
        f"{module} -> {dep}"
        for module, deps in graph.items()
        for dep in deps
        if layer_of(dep) > layer_of(module)
    )
    assert not upwards, f"imports from a higher layer: {upwards}"


def test_the_layer_check_sees_an_upward_import():
    assert layer_of("streammem.features.encoder") < layer_of("streammem.alerts.filter")
    assert layer_of("streammem.service.build") > layer_of("streammem")  # the public API
    assert layer_of("streammem.cli") > layer_of("streammem.service.daemon")
