"""The one registry: it covers DESIGN.md's vocabulary, classifies every operation, and
every operation answers cleanly (analyses change nothing but the command counter)."""

from __future__ import annotations

import copy
import re
from pathlib import Path

import pytest

from core.commands import KINDS, REGISTRY, run_command
from core.session import open_sim

from .conftest import REPO


def design_vocabulary() -> dict[str, list[str]]:
    """Operations per component from DESIGN.md's "Vocabulary" section."""
    p = REPO.parent / "shared" / "DESIGN.md"
    if not p.is_file():
        pytest.skip(f"DESIGN.md is not at {p} (shared/ beside the repository)")
    text = p.read_text(encoding="utf-8")
    section = text.split("## Vocabulary", 1)[1].split("Event line:", 1)[0]
    out: dict[str, list[str]] = {}
    for bullet in re.split(r"\n- ", section):
        m = re.match(r"`/([a-z-]+)[^`]*`:?(.*)", bullet.strip(), re.S)
        if not m:
            continue
        comp, body = m.group(1), m.group(2)
        body = body.split("Resource types:")[0].replace("in the scenarios:", ",")
        body = re.sub(r"\([^)]*\)", "", body)
        ops = [w.strip().rstrip(".") for w in re.split(r"[,;\n]", body)]
        out[comp] = [o for o in ops if re.fullmatch(r"[a-z][a-z0-9]*(-[a-z0-9]+)+|[a-z]+", o)]
    return out


def test_design_vocabulary_is_registered() -> None:
    vocab = design_vocabulary()
    assert {"resource-manager", "coordination-hub", "workflow-recovery", "performance-monitor"} <= set(vocab)
    missing = [
        f"/{c} {o}"
        for c, ops in vocab.items()
        if c in ("resource-manager", "coordination-hub", "workflow-recovery", "performance-monitor")
        for o in ops
        if REGISTRY.get(c, o) is None
    ]
    assert not missing, missing
    assert sum(len(v) for k, v in vocab.items() if k != "subagents") >= 80
    for control in ("pause", "resume", "checkpoint", "reassign", "emergency-stop"):
        assert REGISTRY.get("workflow-status", control) is not None
    assert REGISTRY.default_of("subagents") is not None and REGISTRY.default_of("debug") is not None


def test_every_operation_is_classified_with_help() -> None:
    for spec in REGISTRY:
        assert spec.kind in KINDS
        assert spec.mutates == (spec.kind != "analysis"), spec.name
        assert spec.summary and spec.usage.startswith(f"/{spec.component}")
        assert spec.name in REGISTRY.help_text(spec.name) or spec.usage in REGISTRY.help_text(spec.name)
    kinds = {s.operation: s.kind for s in REGISTRY if s.component == "resource-manager"}
    assert kinds["emergency-reallocation"] == "destructive" and kinds["emergency-analysis"] == "analysis"
    assert REGISTRY.get("coordination-hub", "checkpoint").kind == "checkpoint"  # type: ignore[union-attr]
    assert REGISTRY.get("performance-monitor", "post-emergency-monitoring").kind == "monitoring"  # type: ignore[union-attr]


@pytest.mark.slow
async def test_every_operation_answers_cleanly_on_the_demo(tmp_path: Path) -> None:
    engine = await open_sim(tmp_path / "all.db", demo=True)
    try:
        await engine.advance(900)
        await engine.checkpoint("manual", "base")
        for spec in REGISTRY:
            wf = " workflow_001" if spec.workflow_arg == "required" else ""
            text = f"/{spec.component} {spec.operation}{wf}"
            before = copy.deepcopy(engine.state.snapshot())
            resp = await run_command(engine, text)
            assert resp["status"] in ("success", "error")
            if resp["status"] == "error":
                assert resp["error"]["code"] != "INTERNAL_ERROR", (text, resp)
                assert resp["error"]["message"]
                continue
            if not spec.mutates:
                after = engine.state.snapshot()
                diff = {k for k in after if before.get(k) != after[k]}
                assert diff <= {"seq", "clock", "commands_executed"}, (text, diff)
            await engine.advance(20)
    finally:
        await engine.close()


async def test_readonly_engine_refuses_changes_but_answers_analyses(tmp_path: Path) -> None:
    db = tmp_path / "ro.db"
    eng = await open_sim(db, demo=True)
    await eng.advance(300)
    await eng.close()
    ro = await open_sim(db, readonly=True)
    try:
        h = ro.state.state_hash()
        resp = await run_command(ro, "/coordination-hub pause workflow_003")
        assert resp["error"]["code"] == "READ_ONLY"
        resp = await run_command(ro, "/coordination-hub dependency-analysis")
        assert resp["status"] == "success" and resp["result"]["findings"]
        assert ro.state.state_hash() == h
    finally:
        await ro.close()
