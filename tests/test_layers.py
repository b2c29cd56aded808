"""The package's layers only look down, and no module imports one that imports it back.

Every import counts: at module level, inside functions, and under ``TYPE_CHECKING``.
Read from the source with ``ast``, so the test sees imports that never run here
(TensorFlow's, Keras's).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "exporter"

#: Bottom to top. A module may import modules of its own layer or below, never above.
LAYERS: list[tuple[str, set[str]]] = [
    ("base", {"errors", "_checks", "_files", "_lock", "_procs", "_version", "schema", "storage", "tags", "odapi"}),
    ("format", {"shards", "manifest", "validation", "writer"}),
    ("render", {"render"}),
    ("tensorboard", {"png", "tensorboard"}),
    ("pipeline", {"metrics", "select", "options", "_incremental", "_pipeline", "_remote", "changes"}),
    ("library", {"api", "distributed"}),
    ("faces", {"examples", "views", "cli", "demo", "bench", "capture", "coco", "__init__", "__main__"}),
]


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path) -> set[str]:
    """Every ``exporter`` module that ``path`` imports, anywhere in the file."""
    name = _module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.split(".")[0] == "exporter"}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            if module.split(".")[0] != "exporter":
                continue
            folder = PACKAGE.parent / module.replace(".", "/")
            submodules = {
                f"{module}.{a.name}"
                for a in node.names  # `from . import tags` imports the module tags, not the package's names
                if (folder / f"{a.name}.py").exists() or (folder / a.name / "__init__.py").exists()
            }
            found |= submodules or {module}
    found.discard(name)
    return found


def _graph() -> dict[str, set[str]]:
    modules = {_module_name(p): p for p in PACKAGE.rglob("*.py")}
    graph = {}
    for name, path in modules.items():
        # importing a.b.c also runs a.b's __init__: count the deepest module that exists
        graph[name] = {m for m in _imports(path) if m in modules}
    return graph


def _top(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def _layer(module: str) -> int:
    top = _top(module)
    for i, (_, members) in enumerate(LAYERS):
        if top in members:
            return i
    raise AssertionError(f"{module} is in no layer: add it to LAYERS in {__file__}")


def test_every_module_is_in_a_layer():
    for module in _graph():
        _layer(module)


def test_layers_only_look_down():
    upward = [
        f"{a} ({LAYERS[_layer(a)][0]}) imports {b} ({LAYERS[_layer(b)][0]})"
        for a, deps in _graph().items()
        for b in deps
        if _layer(b) > _layer(a) and _top(a) not in ("__init__", "__main__")
    ]
    assert not upward, "\n".join(upward)


def test_no_import_cycle():
    graph = _graph()
    # the package __init__ re-exports lazily from everything: leave it out, as a leaf
    graph = {k: {d for d in v if d != "exporter"} for k, v in graph.items() if k != "exporter"}
    state: dict[str, int] = {}
    cycles: list[list[str]] = []

    def visit(node: str, path: list[str]) -> None:
        state[node] = 1
        for dep in sorted(graph.get(node, ())):
            if state.get(dep) == 1:
                cycles.append(path[path.index(dep) :] + [dep] if dep in path else [node, dep])
            elif dep not in state:
                visit(dep, path + [dep])
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node, [node])
    assert not cycles, "\n".join(" -> ".join(c) for c in cycles)


@pytest.mark.parametrize(
    "module, forbidden",
    [
        ("exporter.shards", {"exporter.render", "exporter.examples", "exporter.api", "exporter.tensorboard"}),
        ("exporter.schema", {"exporter.shards", "exporter.render"}),
        ("exporter.render.compose", {"exporter.shards", "exporter.api", "exporter._pipeline", "exporter.options"}),
    ],
)
def test_lower_layers_know_nothing_of_the_upper(module, forbidden):
    deps = _graph()[module]
    assert not {d for d in deps if any(d == f or d.startswith(f + ".") for f in forbidden)}, deps


def test_the_checker_sees_imports_inside_functions_and_type_checking(tmp_path):
    """The parser itself: a function-level import and a TYPE_CHECKING import both count."""
    source = PACKAGE / "manifest.py"
    assert "exporter.shards" in _imports(source)  # under TYPE_CHECKING there
    assert "exporter.bench" in _imports(PACKAGE / "cli.py")  # inside _run
