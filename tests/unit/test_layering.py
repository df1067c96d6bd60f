"""backend/ is the product's core: it must never import the UI layer.

Scans every module's import statements (AST, so strings and comments don't
count) and fails naming the file and line of any import of reflex, state or
pages.  The bot worker and scheduler live in backend/workers and obey the
same rule.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
FORBIDDEN = ("reflex", "state", "pages", "app", "rxconfig")


def _imports(path: Path):
    tree = ast.parse(path.read_text(), filename=str(path))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            yield node.lineno, node.module


def _violations(folder: Path) -> list[str]:
    found = []
    for path in sorted(folder.rglob("*.py")):
        for lineno, name in _imports(path):
            if name.split(".")[0] in FORBIDDEN:
                found.append(f"{path.relative_to(ROOT)}:{lineno} imports {name}")
    return found


def test_backend_never_imports_the_ui_layer():
    files = list((ROOT / "backend").rglob("*.py"))
    assert len(files) > 10, "the scan must actually see the backend package"
    assert _violations(ROOT / "backend") == []


def test_the_scan_catches_a_forbidden_import(tmp_path):
    bad = tmp_path / "bad.py"
    bad.write_text("import os\nfrom reflex import State\nimport pages.home\n")
    global ROOT
    old, ROOT = ROOT, tmp_path
    try:
        assert _violations(tmp_path) == ["bad.py:2 imports reflex", "bad.py:3 imports pages.home"]
    finally:
        ROOT = old
