"""The records never import core (STYLE: api → core → utils → models): utils types what it records with
``bkvy.models`` and plain values."""

from __future__ import annotations

import ast
from pathlib import Path

import bkvy.utils


def _imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
    return found


def test_utils_imports_neither_core_nor_api() -> None:
    utils_dir = Path(bkvy.utils.__file__).parent
    upward = {
        f"{path.name}: {module}"
        for path in sorted(utils_dir.glob("*.py"))
        for module in _imported_modules(path)
        if module.startswith(("bkvy.core", "bkvy.api"))
    }
    assert upward == set()
