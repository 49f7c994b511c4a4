"""Architecture rules: the engine never imports textual; imports flow one way."""

from __future__ import annotations

import ast
import functools
import pkgutil
from pathlib import Path

import pytest

from .conftest import REPO, run_python


@pytest.mark.slow
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
    out = run_python(code, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "", f"core pulled in textual: {out.stdout}"
    for path in (REPO / "core").rglob("*.py"):
        for line in path.read_text().splitlines():
            s = line.strip()
            assert not (s.startswith(("import textual", "from textual"))), f"{path}: {s}"


# Imports flow one way, from the command line down to the models. A module may import
# its own layer or a lower one; the most specific prefix decides a module's layer.
# Every import counts: module level, inside functions, and under TYPE_CHECKING.
LAYERS: list[tuple[str, ...]] = [
    (
        "themes",
        "core.models",
        "core.incident_models",
        "core.events",
        "core.clock",
        "core.config",
        "core.config_errors",  # ConfigError, importable without pydantic (no project import)
        "core.engine_errors",  # EngineError, importable without the engine (no project import)
        "core.private",
        "core.anchor",
        "core.usage",  # usage lines, a run's meter, the usage models (no other project import)
        "core.journal",
        "core.lazy_records",  # records decoded from their stored text when read (no project import)
        "core.collector",  # the gc policy of an engine and a console (no project import)
    ),
    (
        "core.store_errors",
        "core.store_commit",  # one transaction as one call on aiosqlite's thread, retried against a lock
        "core.sqlite_check",
        "core.timefmt",
        "core.store_schema",
        "core.store_reads",
        "core.store_tables",
        "core.store_metrics",
        "core.store_clean",  # the clean-close record: when opening may skip quick_check
        "core.projection_history",  # the digests of finished workflows and checkpoint records the store keeps
    ),
    ("core.merge", "core.workflow_file", "core.store"),
    (  # the state (its folds are given to it), its derived indexes, its snapshot
        "core.projection_snapshot",
        "core.projection_index",
        "core.projection",
    ),
    (
        "core.event_data",
        "core.event_catalogue",
        "core.event_summaries",
        "core.incident_summaries",
        "core.reducers",
        "core.task_reducers",
        "core.work_reducers",
        "core.usage.event_data",
        "core.usage.folds",
        "core.usage.summaries",
    ),
    ("core.event_types",),  # the event catalogue: declarations with payload, fold, summary
    ("core.scheduler", "core.telemetry", "core.verify", "core.repair"),
    ("core.runtimes",),  # the runtime contract and what agent processes share (limits, wire, handshake)
    ("core.engine",),
    (  # the runtimes and the parts the real ones are composed of (they name the engine they report to)
        "core.runtimes.sim",
        "core.runtimes.fleet",
        "core.runtimes.task_io",
        "core.runtimes.dispatch",
        "core.runtimes.reports",
        "core.runtimes.supervise",
        "core.runtimes.adoption",
        "core.runtimes.opening",
        "core.runtimes.processes",
        "core.runtimes.local_hosts",
        "core.runtimes.local",
        "core.runtimes.ray_cluster",
        "core.runtimes.ray_actors",
        "core.runtimes.ray",
        "core.runtimes.ray_agent",
        "core.runtimes.real",
    ),
    ("core.demo", "core.session", "core.repair"),
    ("core.commands",),
    ("core.incidents",),
    ("core.host",),
    ("tui",),
    ("opsdeck",),
]

PACKAGES = ("core", "tui", "opsdeck", "themes")


def _layer(module: str) -> int | None:
    best: tuple[int, int] | None = None  # (prefix length, layer)
    for i, names in enumerate(LAYERS):
        for n in names:
            if (module == n or module.startswith(n + ".")) and (best is None or len(n) > best[0]):
                best = (len(n), i)
    return None if best is None else best[1]


@functools.cache
def _modules() -> dict[str, Path]:
    out = {}
    for pkg in PACKAGES:
        for path in (REPO / pkg).rglob("*.py"):
            rel = path.relative_to(REPO).with_suffix("")
            parts = list(rel.parts[:-1]) if rel.name == "__init__" else list(rel.parts)
            out[".".join(parts)] = path
    return out


def _imports(path: Path, module: str, known: dict[str, Path]) -> list[tuple[str, int]]:
    """The project modules ``path`` imports (relative ones resolved), wherever the import is."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            for a in node.names:  # ``from pkg import mod`` imports the module pkg.mod
                sub = f"{target}.{a.name}"
                out.append((sub if sub in known else target, node.lineno))
        elif isinstance(node, ast.Import):
            out += [(a.name, node.lineno) for a in node.names]
    return [(t, line) for t, line in out if t in known]


@functools.cache
def _graph() -> dict[str, set[str]]:
    known = _modules()
    return {m: {t for t, _ in _imports(p, m, known) if t != m} for m, p in known.items()}


def _cycles(graph: dict[str, set[str]]) -> list[frozenset[str]]:
    """The strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    out: list[frozenset[str]] = []
    counter = 0

    def visit(v: str) -> None:
        nonlocal counter
        index[v] = low[v] = counter
        counter += 1
        stack.append(v)
        on.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = set()
            while True:
                w = stack.pop()
                on.discard(w)
                comp.add(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(frozenset(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def test_every_module_has_a_layer() -> None:
    missing = sorted(m for m in _modules() if _layer(m) is None)
    assert not missing, f"modules in no layer (add them to LAYERS): {missing}"


def test_imports_flow_one_way() -> None:
    known = _modules()
    bad = []
    checked = 0
    for module, path in sorted(known.items()):
        mine = _layer(module)
        assert mine is not None
        for target, line in _imports(path, module, known):
            theirs = _layer(target)
            assert theirs is not None
            checked += 1
            if theirs > mine:
                bad.append(f"{path.relative_to(REPO)}:{line}: {module} imports {target} (a higher layer)")
    assert checked > 500
    assert not bad, "\n".join(bad)


def test_no_import_cycles() -> None:
    """Every import counts (module level, in functions, under TYPE_CHECKING): none may
    lead back to the module it starts from, even within one layer."""
    found = _cycles(_graph())
    assert not found, f"import cycles: {[sorted(c) for c in found]}"


def test_the_cycle_check_sees_a_cycle() -> None:
    """The check itself: a made-up graph with one circle and one chain."""
    g = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}, "e": set()}
    assert _cycles(g) == [frozenset({"a", "b", "c"})]
    assert _layer("core.runtimes.local") > _layer("core.engine") > _layer("core.runtimes")  # type: ignore[operator]


def test_importlib_is_not_used_to_find_operations() -> None:
    for path in (REPO / "core").rglob("*.py"):
        assert "importlib.import_module" not in path.read_text(encoding="utf-8"), path
