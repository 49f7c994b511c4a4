"""No class in core/ over 500 lines, no module over 500 lines: one that size holds more than one concept."""

from __future__ import annotations

import ast
from pathlib import Path

from .conftest import REPO

MAX_CLASS_LINES = 500

# Classes not yet split, each as "path::Class": (the size it may not grow past, the lane
# that shrinks it). The test fails on any other class over the limit, on one of these
# grown past its ceiling, and on an entry no class needs any more (then delete it).
OVER_LIMIT: dict[str, tuple[int, str]] = {}


def _class_sizes() -> dict[str, int]:
    out = {}
    for path in sorted((REPO / "core").rglob("*.py")):
        rel = path.relative_to(REPO).as_posix()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ClassDef):
                assert node.end_lineno is not None
                out[f"{rel}::{node.name}"] = node.end_lineno - node.lineno + 1
    return out


def test_no_class_in_core_is_over_500_lines() -> None:
    sizes = _class_sizes()
    assert len(sizes) > 50, "the scan found the classes of core/"
    over = {k: n for k, n in sizes.items() if n > MAX_CLASS_LINES and k not in OVER_LIMIT}
    assert not over, f"classes over {MAX_CLASS_LINES} lines (split them by concept): {over}"
    grown = {k: (sizes[k], cap) for k, (cap, _) in OVER_LIMIT.items() if sizes.get(k, 0) > cap}
    assert not grown, f"allow-listed classes grew past their ceiling (size, ceiling): {grown}"
    stale = [k for k in OVER_LIMIT if sizes.get(k, 0) <= MAX_CLASS_LINES]
    assert not stale, f"these classes are within {MAX_CLASS_LINES} lines now: delete them from OVER_LIMIT: {stale}"


def test_the_size_check_counts_a_class_from_its_line_to_its_end() -> None:
    """The check itself: a made-up class of a known size."""
    body = "class A:\n" + "".join(f"    x{i} = {i}\n" for i in range(9)) + "\n\ny = 1\n"
    node = next(n for n in ast.walk(ast.parse(body)) if isinstance(n, ast.ClassDef))
    assert node.end_lineno is not None and node.end_lineno - node.lineno + 1 == 10


MAX_MODULE_LINES = 500

# Modules not yet split, each as path: the size it may not grow past, a little above its size
# today so that small edits in other lanes pass; lower it as it shrinks (a module of one
# concept is 100-500 lines). The test fails on any other module over the limit, on one of
# these grown past its ceiling, and on an entry no module needs any more (then delete it).
MODULES_OVER_LIMIT: dict[str, int] = {}


def _module_sizes(root: Path = REPO) -> dict[str, int]:
    return {
        p.relative_to(root).as_posix(): len(p.read_text(encoding="utf-8").splitlines())
        for p in sorted((root / "core").rglob("*.py"))
    }


def test_no_module_in_core_is_over_500_lines() -> None:
    sizes = _module_sizes()
    assert len(sizes) > 100, "the scan found the modules of core/"
    over = {k: n for k, n in sizes.items() if n > MAX_MODULE_LINES and k not in MODULES_OVER_LIMIT}
    assert not over, f"modules over {MAX_MODULE_LINES} lines (split them by concept): {over}"
    grown = {k: (sizes.get(k, 0), cap) for k, cap in MODULES_OVER_LIMIT.items() if sizes.get(k, 0) > cap}
    assert not grown, f"allow-listed modules grew past their ceiling (size, ceiling): {grown}"
    stale = [k for k in MODULES_OVER_LIMIT if sizes.get(k, 0) <= MAX_MODULE_LINES]
    assert not stale, (
        f"these modules are within {MAX_MODULE_LINES} lines now: delete them from MODULES_OVER_LIMIT: {stale}"
    )


def test_the_module_check_counts_a_module_s_lines(tmp_path: Path) -> None:
    """The check itself: made-up modules at and one line over the limit."""
    (tmp_path / "core" / "pkg").mkdir(parents=True)
    (tmp_path / "core" / "pkg" / "long.py").write_text("x = 1\n" * (MAX_MODULE_LINES + 1), encoding="utf-8")
    (tmp_path / "core" / "fits.py").write_text("x = 1\n" * MAX_MODULE_LINES, encoding="utf-8")
    sizes = _module_sizes(tmp_path)
    assert sizes == {"core/fits.py": MAX_MODULE_LINES, "core/pkg/long.py": MAX_MODULE_LINES + 1}
    assert [k for k, n in sizes.items() if n > MAX_MODULE_LINES] == ["core/pkg/long.py"]


OUTSIDE_CORE = ("opsdeck", "tui", "themes", "bench")
"""The program's other packages and the benchmarks: the same limit holds there."""


def test_no_module_outside_core_is_over_500_lines() -> None:
    sizes = {
        p.relative_to(REPO).as_posix(): len(p.read_text(encoding="utf-8").splitlines())
        for pkg in OUTSIDE_CORE
        for p in sorted((REPO / pkg).rglob("*.py"))
    }
    assert len(sizes) > 50 and any(k.startswith("bench/") for k in sizes), "the scan found the modules"
    over = {k: n for k, n in sizes.items() if n > MAX_MODULE_LINES}
    assert not over, f"modules over {MAX_MODULE_LINES} lines (split them by concept): {over}"
