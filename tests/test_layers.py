"""The import drawing, enforced. Every module under bkvy/ (and main.py) is parsed with ``ast``; its ``bkvy``
imports must point down the layers:

    main.py  →  api  →  core  →  utils  →  models  →  clock        (a layer may import any layer to its right)
    tools, on the side:  sim  → models, clock
                         demo → core.config, sim, models, clock    (only main.py and tools import tools)
                         replay → api, core, utils, demo, sim, models, clock   (issue 20 §3: the log replayed)

FastAPI and Starlette are imported only in api/ (and main.py). Inside core, the rooms (config, routing,
execution, circuits, limits, upstream, shared) import each other without a cycle.

Imports under ``if TYPE_CHECKING:`` and imports inside functions count like any other: what is checked is the
drawing a reader sees in the source, not what happens to run at import time. A deferred import that goes up
a layer is still an arrow going up.

``render_drawing()`` prints the package-level drawing with edge counts; ``python tests/test_layers.py`` shows it.
"""

from __future__ import annotations

import ast
from collections import Counter
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import NamedTuple

REPO_ROOT = Path(__file__).resolve().parent.parent

# What each layer may import (module-name prefixes). Layers not listed as a prefix are off limits.
_MAY_IMPORT: dict[str, tuple[str, ...]] = {
    "root": (),  # bkvy/__init__.py: importing any bkvy module runs it, so it imports nothing
    "clock": ("bkvy.clock",),
    "models": ("bkvy.models", "bkvy.clock"),
    "utils": ("bkvy.utils", "bkvy.models", "bkvy.clock"),
    "core": ("bkvy.core", "bkvy.utils", "bkvy.models", "bkvy.clock"),
    "api": ("bkvy.api", "bkvy.core", "bkvy.utils", "bkvy.models", "bkvy.clock"),
    "sim": ("bkvy.sim", "bkvy.models", "bkvy.clock"),
    "demo": ("bkvy.demo", "bkvy.core.config", "bkvy.sim", "bkvy.models", "bkvy.clock"),
    "replay": (
        "bkvy.replay",
        "bkvy.api",
        "bkvy.core",
        "bkvy.utils",
        "bkvy.demo",
        "bkvy.sim",
        "bkvy.models",
        "bkvy.clock",
    ),
    "main": ("bkvy",),
}
_LAYER_ORDER = ("main", "api", "core", "utils", "models", "clock", "replay", "demo", "sim", "root")
_WEB_FRAMEWORKS = frozenset({"fastapi", "starlette"})
_MAY_IMPORT_WEB_FRAMEWORKS = frozenset({"api", "main"})


class ImportEdge(NamedTuple):
    importer: str  # module name, e.g. "bkvy.utils.recorder"
    imported: str  # the bkvy module imported, or a third-party top-level name ("fastapi")
    path: str  # importer's file, relative to the repository root
    line: int

    def describe(self) -> str:
        return (
            f"{self.path}:{self.line}  {self.importer} ({layer_of(self.importer)})"
            f" -> {self.imported} ({layer_of(self.imported) if is_bkvy(self.imported) else 'third party'})"
        )


def is_bkvy(module: str) -> bool:
    return module == "bkvy" or module.startswith("bkvy.") or module == "main"


def layer_of(module: str) -> str:
    """The layer a bkvy module belongs to; raises KeyError for a package the drawing does not place yet."""
    if module == "main":
        return "main"
    if module == "bkvy":
        return "root"
    top = module.split(".")[1]
    if top in ("clock", "models", "utils", "core", "api", "sim", "demo", "replay"):
        return top
    raise KeyError(f"{module}: not in the drawing; give it a layer in tests/test_layers.py")


def is_allowed(edge: ImportEdge) -> bool:
    return any(_is_under(edge.imported, prefix) for prefix in _MAY_IMPORT[layer_of(edge.importer)])


def _is_under(module: str, prefix: str) -> bool:
    return module == prefix or module.startswith(prefix + ".")


def module_sources(root: Path = REPO_ROOT) -> dict[str, tuple[str, str]]:
    """module name -> (path relative to root, source text) for bkvy/** and main.py."""
    sources: dict[str, tuple[str, str]] = {}
    for path in sorted([*root.glob("bkvy/**/*.py"), root / "main.py"]):
        parts = list(path.relative_to(root).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        sources[".".join(parts)] = (str(path.relative_to(root)), path.read_text(encoding="utf-8"))
    return sources


def collect_edges(sources: Mapping[str, tuple[str, str]]) -> list[ImportEdge]:
    """Every import statement anywhere in each module (TYPE_CHECKING blocks and function bodies included)."""
    edges: list[ImportEdge] = []
    for module, (path, text) in sources.items():
        is_package = path.endswith("__init__.py")
        package = module if is_package else module.rpartition(".")[0]
        for node in ast.walk(ast.parse(text, filename=path)):
            if isinstance(node, ast.Import | ast.ImportFrom):
                edges += [
                    ImportEdge(module, imported, path, node.lineno)
                    for imported in _imported_names(node, package, sources)
                ]
    return edges


def _imported_names(node: ast.Import | ast.ImportFrom, package: str, modules: Mapping[str, object]) -> list[str]:
    if isinstance(node, ast.Import):
        return [_normalise(alias.name) for alias in node.names]
    if node.level:  # relative: `from .knobs import X` inside bkvy.sim
        base = package.split(".")[: len(package.split(".")) - (node.level - 1)]
        source = ".".join([*base, node.module] if node.module else base)
    else:
        source = node.module or ""
    # `from bkvy.core import upstream` imports the module bkvy.core.upstream, not the package
    targets = [
        f"{source}.{alias.name}" if f"{source}.{alias.name}" in modules else _normalise(source) for alias in node.names
    ]
    return list(dict.fromkeys(targets))


def _normalise(module: str) -> str:
    return module if is_bkvy(module) else module.split(".")[0]


def upward_imports(edges: Iterable[ImportEdge]) -> list[ImportEdge]:
    return [e for e in edges if is_bkvy(e.imported) and not is_allowed(e)]


def room_of(module: str) -> str:
    """bkvy.core.<room>.x -> bkvy.core.<room>; anything else is its layer."""
    parts = module.split(".")
    if layer_of(module) == "core" and len(parts) >= 3:
        return ".".join(parts[:3])
    return layer_of(module)


def room_cycles(edges: Iterable[ImportEdge], ignored: frozenset[tuple[str, str]]) -> list[list[str]]:
    """Strongly connected groups of two or more core rooms (each group holds at least one cycle)."""
    graph: dict[str, set[str]] = {}
    for edge in edges:
        if not is_bkvy(edge.imported) or (edge.importer, edge.imported) in ignored:
            continue
        if layer_of(edge.importer) != "core" or layer_of(edge.imported) != "core":
            continue
        source, target = room_of(edge.importer), room_of(edge.imported)
        if source != target:
            graph.setdefault(source, set()).add(target)
            graph.setdefault(target, set())
    return [sorted(group) for group in _strongly_connected(graph) if len(group) > 1]


def _strongly_connected(graph: Mapping[str, set[str]]) -> list[list[str]]:
    # Tarjan's algorithm; the graph has a handful of nodes, recursion depth is no concern.
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    groups: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in sorted(graph[node]):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            group: list[str] = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                group.append(member)
                if member == node:
                    break
            groups.append(group)

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return groups


def render_drawing(edges: Iterable[ImportEdge] | None = None) -> str:
    """The package-level drawing: one line per arrow between layers (and between core's rooms), with the number
    of module-to-module imports that make it. Upward arrows are marked."""
    edges = collect_edges(module_sources()) if edges is None else list(edges)
    bkvy_edges = {(e.importer, e.imported) for e in edges if is_bkvy(e.imported)}
    layers = Counter((layer_of(a), layer_of(b)) for a, b in bkvy_edges if layer_of(a) != layer_of(b))
    rooms = Counter(
        (room_of(a), room_of(b))
        for a, b in bkvy_edges
        if layer_of(a) == layer_of(b) == "core" and room_of(a) != room_of(b)
    )
    upward = {(layer_of(e.importer), layer_of(e.imported)) for e in upward_imports(edges)}
    rank = {layer: position for position, layer in enumerate(_LAYER_ORDER)}
    lines = ["layers (arrow: imports; count: module pairs)"]
    for (source, target), count in sorted(layers.items(), key=lambda item: (rank[item[0][0]], rank[item[0][1]])):
        mark = "   <- goes up" if (source, target) in upward else ""
        lines.append(f"  {source:>6} -> {target:<7}{count:4d}{mark}")
    lines.append("core rooms")
    for (source, target), count in sorted(rooms.items()):
        lines.append(f"  {_short(source):>9} -> {_short(target):<10}{count:4d}")
    return "\n".join(lines)


# --- the checks on the real tree -------------------------------------------------------------------------------

EDGES = collect_edges(module_sources())


def test_every_module_has_a_layer() -> None:
    unplaced = []
    for module in module_sources():
        try:
            layer_of(module)
        except KeyError as error:
            unplaced.append(str(error))
    assert not unplaced, "\n".join(unplaced)


def test_imports_point_down_the_layers() -> None:
    upward = upward_imports(EDGES)
    listing = "\n".join(e.describe() for e in upward)
    assert not upward, f"imports that go up the drawing:\n{listing}\n\n{render_drawing(EDGES)}"


def test_web_framework_only_in_api() -> None:
    leaks = [
        e for e in EDGES if e.imported in _WEB_FRAMEWORKS and layer_of(e.importer) not in _MAY_IMPORT_WEB_FRAMEWORKS
    ]
    assert not leaks, "fastapi/starlette outside api/:\n" + "\n".join(e.describe() for e in leaks)


def test_core_rooms_import_each_other_without_a_cycle() -> None:
    cycles = room_cycles(EDGES, frozenset())
    assert not cycles, "\n".join(_describe_cycle(group, EDGES) for group in cycles)


def _describe_cycle(group: list[str], edges: Iterable[ImportEdge]) -> str:
    between = {
        (e.importer, e.imported): e
        for e in edges
        if is_bkvy(e.imported)
        and layer_of(e.importer) == layer_of(e.imported) == "core"
        and room_of(e.importer) in group
        and room_of(e.imported) in group
        and room_of(e.importer) != room_of(e.imported)
    }
    ordered = sorted(between.values(), key=lambda e: (room_of(e.importer), room_of(e.imported), e.importer))
    return "\n".join(
        ["cycle among " + ", ".join(_short(room) for room in group) + "; the imports between them:"]
        + [f"  {_short(room_of(e.importer))} -> {_short(room_of(e.imported))}:  {e.describe()}" for e in ordered]
    )


def _short(room: str) -> str:
    return room.removeprefix("bkvy.core.")


# --- the checker itself can fail --------------------------------------------------------------------------------


def _edges_of(files: Mapping[str, str]) -> list[ImportEdge]:
    return collect_edges({module: (module.replace(".", "/") + ".py", text) for module, text in files.items()})


def test_an_upward_import_under_type_checking_is_found() -> None:
    edges = _edges_of(
        {
            "bkvy.utils.records": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n"
            "    from bkvy.core.execution.executor import RequestOutcome\n",
            "bkvy.core.execution.executor": "",
        }
    )
    assert [(e.importer, e.imported, e.line) for e in upward_imports(edges)] == [
        ("bkvy.utils.records", "bkvy.core.execution.executor", 3)
    ]


def test_relative_and_function_level_imports_are_resolved() -> None:
    edges = _edges_of(
        {
            "bkvy.sim.wire": "def late():\n    from ..core import routing\n",
            "bkvy.core.routing": "",
            "bkvy.models.types": "from . import errors\nimport fastapi.responses\n",
            "bkvy.models.errors": "",
        }
    )
    assert {(e.importer, e.imported) for e in edges} == {
        ("bkvy.sim.wire", "bkvy.core.routing"),
        ("bkvy.models.types", "bkvy.models.errors"),
        ("bkvy.models.types", "fastapi"),
    }
    assert [e.imported for e in upward_imports(edges)] == ["bkvy.core.routing"]


def test_a_cycle_between_rooms_is_found() -> None:
    edges = _edges_of(
        {
            "bkvy.core.routing.plan": "from bkvy.core.limits.lanes import Lane\n",
            "bkvy.core.limits.lanes": "from bkvy.core.execution.run import Run\n",
            "bkvy.core.execution.run": "from bkvy.core.routing.plan import Plan\n",
        }
    )
    assert room_cycles(edges, frozenset()) == [["bkvy.core.execution", "bkvy.core.limits", "bkvy.core.routing"]]
    cut = frozenset({("bkvy.core.execution.run", "bkvy.core.routing.plan")})
    assert room_cycles(edges, cut) == []


def test_drawing_lists_layer_arrows_with_counts() -> None:
    drawing = render_drawing(
        _edges_of(
            {
                "bkvy.api.app": "from bkvy.core.routing import plan\nfrom bkvy.models import types\n",
                "bkvy.core.routing.plan": "",
                "bkvy.models.types": "",
                "bkvy.utils.records": "from bkvy.api.app import x\n",
            }
        )
    )
    assert "     api -> core      1" in drawing and "   utils -> api       1   <- goes up" in drawing


if __name__ == "__main__":
    print(render_drawing())
