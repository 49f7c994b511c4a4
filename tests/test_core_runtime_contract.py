"""The runtime contract: every capability used on a runtime is declared on the
protocol and implemented by every runtime, which says "does not apply" explicitly;
callers decide from declared capabilities, never by probing or comparing names."""

from __future__ import annotations

import ast
import asyncio
import re
from pathlib import Path

import pytest

from core.clock import VirtualClock
from core.runtimes import Capabilities, NotApplicable, Runtime
from core.runtimes.local import LocalRuntime
from core.runtimes.sim import SimRuntime
from core.session import open_sim

from .conftest import REPO


def _protocol_members() -> set[str]:
    members = {n for n in vars(Runtime) if not n.startswith("_")}
    members |= set(Runtime.__annotations__)
    return members


def _runtime_classes() -> list[type]:
    out: list[type] = [SimRuntime, LocalRuntime]
    try:
        from core.runtimes.ray import RayRuntime
    except ImportError:  # Ray is optional: its class is checked where it is installed
        return out
    return [*out, RayRuntime]


MEMBERS = _protocol_members()
RUNTIME_NAMES = re.compile(r"^(runtime|rt)$")


def _uses_on_runtimes() -> dict[str, list[str]]:
    """Every ``<...>.runtime.X``, ``runtime.X`` and ``rt.X`` outside core/runtimes: X -> where."""
    used: dict[str, list[str]] = {}
    files = [p for d in ("core", "tui", "opsdeck") for p in (REPO / d).rglob("*.py")]
    for path in files:
        rel = path.relative_to(REPO)
        if rel.parts[:2] == ("core", "runtimes"):
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if not isinstance(node, ast.Attribute):
                continue
            base = node.value
            is_runtime = (isinstance(base, ast.Name) and RUNTIME_NAMES.match(base.id)) or (
                isinstance(base, ast.Attribute) and base.attr == "runtime"
            )
            if is_runtime:
                used.setdefault(node.attr, []).append(f"{rel}:{node.lineno}")
    return used


def test_every_capability_used_on_a_runtime_is_declared_on_the_protocol() -> None:
    used = _uses_on_runtimes()
    assert {"relimit", "ping_agent", "attempts_allowed", "partition"} <= used.keys() | MEMBERS
    # A --runtime choice (str) or a runtime's recorded description (dict) named so is not a runtime.
    undeclared = {k: v for k, v in used.items() if k not in MEMBERS and not hasattr(str, k) and not hasattr(dict, k)}
    assert not undeclared, f"used on a runtime but not declared on core.runtimes.Runtime: {undeclared}"


@pytest.mark.parametrize("cls", _runtime_classes(), ids=lambda c: c.__name__)
def test_every_runtime_implements_every_member_of_the_protocol(cls: type) -> None:
    # adopted, recovered, left_running: instance attributes, set in __init__
    missing = sorted(m for m in MEMBERS if m not in ("adopted", "recovered", "left_running") and not hasattr(cls, m))
    assert not missing, f"{cls.__name__} lacks {missing}"
    assert isinstance(cls.capabilities, Capabilities)  # type: ignore[attr-defined]
    assert cls.name in {"sim", "local", "ray"}  # type: ignore[attr-defined]


def test_the_simulated_runtime_says_what_does_not_apply() -> None:
    rt = SimRuntime(VirtualClock())
    assert rt.capabilities == Capabilities(processes=False, simulated=True, cluster=False)
    assert rt.attempts_allowed("w/t") is None
    assert rt.cleanup_temp() is None
    assert rt.adopted == [] and rt.recovered == []
    with pytest.raises(NotApplicable, match="not OS processes"):
        asyncio.run(rt.relimit([("agent_001", "w/t", {"nice": 5})]))


def test_a_runtime_of_real_processes_refuses_the_simulated_worlds_faults(tmp_path: Path) -> None:
    rt = LocalRuntime(tmp_path / "run")
    assert rt.capabilities.processes and not rt.capabilities.simulated
    for fault in (
        lambda: rt.slow_agent("agent_001", 2.0),
        lambda: rt.load_spike(1.0, 1.0),
        lambda: rt.leak("agent_001", 5.0),
        lambda: rt.degrade(0.1),
        rt.restore_speed,
    ):
        with pytest.raises(NotApplicable, match="only on the simulated runtime"):
            fault()


async def test_relimit_on_the_simulated_runtime_changes_no_limit_and_says_so(tmp_path: Path) -> None:
    eng = await open_sim(tmp_path / "s.db", demo=True)
    try:
        await eng.advance(120)
        wf = next(w for w in eng.state.workflows.values() if eng.state.running_by_wf.get(w.id))
        before = eng.state.seq
        out = await eng.relimit_workflow(wf.id)
        assert out["applies"] is False and out["runtime"] == "sim"
        assert "not OS processes" in out["reason"]
        assert eng.state.seq == before, "nothing was recorded as limited"
    finally:
        await eng.close()


def test_no_caller_probes_a_runtime_or_compares_its_name() -> None:
    probe = re.compile(r"(getattr|hasattr)\(\s*[\w.]*(runtime|\brt)\b")
    by_name = re.compile(r"""(runtime|\brt)\b[\w.()'"]*\s*[!=]=\s*["'](sim|ray)["']""")
    bad = []
    for d in ("core", "tui", "opsdeck"):
        for path in (REPO / d).rglob("*.py"):
            for i, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
                if probe.search(line) or by_name.search(line):
                    bad.append(f"{path.relative_to(REPO)}:{i}: {line.strip()}")
    assert not bad, "\n".join(bad)
