"""The lazily loaded public names of lamina.geo and lamina.weights: listed once, typed, resolvable, in dir()."""

import ast
import importlib
from pathlib import Path

import pytest


@pytest.mark.parametrize("package", ["lamina.geo", "lamina.weights"])
def test_lazy_names_are_listed_typed_and_resolve(package):
    mod = importlib.import_module(package)
    tree = ast.parse(Path(mod.__file__).read_text())
    typed = {}
    for node in tree.body:
        if isinstance(node, ast.If) and getattr(node.test, "id", None) == "TYPE_CHECKING":
            for imp in node.body:
                typed.update({a.name: imp.module for a in imp.names})
    assert typed == mod._LAZY  # what type checkers see is what loads at run time
    assert mod.__all__ == sorted(mod._LAZY)
    for name in mod.__all__:
        assert name in dir(mod)
        assert getattr(mod, name) is getattr(importlib.import_module(mod._LAZY[name]), name)
    with pytest.raises(AttributeError):
        mod.no_such_name  # noqa: B018
