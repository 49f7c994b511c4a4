"""Architecture rules: the engine never imports textual."""

from __future__ import annotations

import pkgutil
import subprocess
import sys

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
            assert not (s.startswith("import textual") or s.startswith("from textual")), f"{path}: {s}"
