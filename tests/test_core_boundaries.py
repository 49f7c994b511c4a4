"""Architecture rules: the engine never imports textual; imports flow one way."""

from __future__ import annotations

import ast
import pkgutil
import subprocess
import sys
from pathlib import Path

from .conftest import REPO


def test_core_never_imports_textual() -> None:
    import core

    modules = [m.name for m in pkgutil.walk_packages(core.__path__, "core.")]
    assert len(modules) > 8
    code = (
        "import importlib, sys\n"
        f"for m in {modules!r}: importlib.import_module(m)\n"
        "bad = sorted(m for m in sys.modules if m == 'textual' or m.startswith('textual.'))\n"
        "print(','.join(bad))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "", f"core pulled in textual: {out.stdout}"
    for path in (REPO / "core").rglob("*.py"):
        for line in path.read_text().splitlines():
            s = line.strip()
            assert not (s.startswith(("import textual", "from textual"))), f"{path}: {s}"


# Imports flow one way: tui -> core.incidents -> core.commands -> engine ->
# store/projection -> models/events. A module may import its own layer or below.
LAYERS: list[tuple[str, ...]] = [
    ("core.models", "core.events", "core.event_data", "core.config", "core.clock", "core.merge", "core.telemetry"),
    (
        "core.store",
        "core.projection",
        "core.event_types",
        "core.event_summaries",
        "core.reducers",
        "core.work_reducers",
        "core.scheduler",
        "core.verify",
    ),
    ("core.engine", "core.session", "core.demo"),
    ("core.commands",),
    ("core.incidents",),
    ("tui",),
]


def _layer(module: str) -> int | None:
    for i, names in enumerate(LAYERS):
        if any(module == n or module.startswith(n + ".") for n in names):
            return i
    return None


def _imports(path: Path, module: str) -> list[tuple[str, int]]:
    """Every module ``path`` imports (relative ones resolved), outside TYPE_CHECKING."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    typing_only = {
        id(n)
        for node in ast.walk(tree)
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test)
        for n in ast.walk(node)
    }
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    out = []
    for node in ast.walk(tree):
        if id(node) in typing_only:
            continue
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            targets = [target] if node.module else [f"{target}.{a.name}" for a in node.names]
            out += [(t, node.lineno) for t in targets]
        elif isinstance(node, ast.Import):
            out += [(a.name, node.lineno) for a in node.names]
    return out


def test_imports_flow_one_way() -> None:
    bad = []
    checked = 0
    for path in sorted([*(REPO / "core").rglob("*.py"), *(REPO / "tui").rglob("*.py")]):
        rel = path.relative_to(REPO).with_suffix("")
        parts = list(rel.parts[:-1]) if rel.name == "__init__" else list(rel.parts)
        module = ".".join(parts)
        mine = _layer(module)
        if mine is None:
            continue
        for target, line in _imports(path, module):
            theirs = _layer(target)
            checked += 1
            if theirs is not None and theirs > mine:
                bad.append(f"{path.relative_to(REPO)}:{line}: {module} imports {target} (a higher layer)")
    assert checked > 100
    assert not bad, "\n".join(bad)


def test_importlib_is_not_used_to_find_operations() -> None:
    for path in (REPO / "core").rglob("*.py"):
        assert "importlib.import_module" not in path.read_text(encoding="utf-8"), path
