"""No import cycle between lamina's modules, counting every import: an import inside a function is still an import.

The import graph is read from the source with :mod:`ast`, so the test needs none of the optional dependencies. An
edge ``a -> b`` means that executing module ``a`` executes module ``b`` first: ``import b``, ``from b import x``,
``from pkg import b`` (``b`` a submodule) and the ``__init__`` of every package on the way, except packages that
contain ``a`` itself (a package's ``__init__`` importing its own submodules is how packages work). Imports under
``if TYPE_CHECKING:`` are not executed and are left out.
"""

from __future__ import annotations

import ast
from pathlib import Path

import lamina

SRC = Path(lamina.__file__).resolve().parent.parent


def module_files(root: Path, package: str) -> dict[str, Path]:
    """Dotted module name -> file, for every ``.py`` file of ``package`` under ``root``."""
    out = {}
    for path in sorted((root / package.replace(".", "/")).rglob("*.py")):
        parts = list(path.relative_to(root).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = path
    return out


def _imports(tree: ast.Module):
    """Every import statement of a module, also inside functions and methods (an import that runs later is still
    an import), except those under ``if TYPE_CHECKING:``, which never run."""
    stack = list(ast.iter_child_nodes(tree))
    while stack:
        node = stack.pop()
        if isinstance(node, ast.Import | ast.ImportFrom):
            yield node
            continue
        if isinstance(node, ast.If):
            test = node.test
            name = test.id if isinstance(test, ast.Name) else test.attr if isinstance(test, ast.Attribute) else ""
            if name == "TYPE_CHECKING":
                stack.extend(node.orelse)
                continue
        stack.extend(ast.iter_child_nodes(node))


def import_graph(root: Path, package: str) -> dict[str, set[str]]:
    """Module -> modules of ``package`` that executing it executes first (see the module docstring)."""
    files = module_files(root, package)
    graph: dict[str, set[str]] = {m: set() for m in files}
    for mod, path in files.items():
        is_pkg = path.name == "__init__.py"
        here = mod if is_pkg else mod.rpartition(".")[0]
        targets = []
        for node in _imports(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                targets += [a.name for a in node.names]
                continue
            base = node.module or ""
            if node.level:
                parent = here.split(".")
                parent = parent[: len(parent) - (node.level - 1)]
                base = ".".join(parent + ([base] if base else []))
            targets.append(base)
            targets += [f"{base}.{a.name}" for a in node.names if f"{base}.{a.name}" in files]
        ancestors = {".".join(mod.split(".")[:i]) for i in range(1, mod.count(".") + 1)}
        for t in targets:
            parts = t.split(".")
            for i in range(1, len(parts) + 1):  # the target and the packages on the way to it
                name = ".".join(parts[:i])
                if name in files and name != mod and name not in ancestors:
                    graph[mod].add(name)
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle ``[a, b, ..., a]`` of the graph, or None."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return path[path.index(nxt) :] + [nxt]
            if nxt not in state:
                found = visit(nxt)
                if found:
                    return found
        path.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state:
            found = visit(node)
            if found:
                return found
    return None


def test_lamina_has_no_import_cycle():
    graph = import_graph(SRC, "lamina")
    assert "lamina.geo.data.rasters" in graph and len(graph) > 50  # the walk found the package
    cycle = find_cycle(graph)
    assert cycle is None, "import cycle: " + " -> ".join(cycle)


def test_the_library_never_imports_the_cli():
    graph = import_graph(SRC, "lamina")
    entry_points = {"lamina.__main__"}  # `python -m lamina` runs the command line by design
    offenders = sorted(m for m, deps in graph.items() if not m.startswith("lamina.cli") and m not in entry_points
                       and any(d.startswith("lamina.cli") for d in deps))  # fmt: skip
    assert not offenders


def test_the_walk_detects_a_cycle(tmp_path):
    """A made-up package with a cycle through a package __init__ and a relative import; and one without."""
    pkg = tmp_path / "demo"
    (pkg / "sub").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "a.py").write_text("from demo.sub import helper\n\ndef f():\n    import demo.c\n")
    (pkg / "sub" / "__init__.py").write_text("")
    (pkg / "sub" / "helper.py").write_text("from .. import b\n")
    (pkg / "b.py").write_text("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    import demo.c\nimport demo.a\n")
    (pkg / "c.py").write_text("import demo.b\n")
    graph = import_graph(tmp_path, "demo")
    assert graph["demo.a"] == {"demo.sub", "demo.sub.helper", "demo.c"}  # the function-level import is an edge
    assert "demo.c" not in graph["demo.b"]  # nor the TYPE_CHECKING one
    cycle = find_cycle(graph)
    assert cycle is not None and cycle[0] == cycle[-1] and {"demo.a", "demo.b"} <= set(cycle)
    (pkg / "b.py").write_text("x = 1\n")
    assert find_cycle(import_graph(tmp_path, "demo")) is None
