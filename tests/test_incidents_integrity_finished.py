"""A data-integrity plan drafted (or re-planned) after an affected workflow finished does
not start by freezing that workflow: the step was refused (INVALID_STATE: already
completed), the plan aborted and rolled back at its first step, and the incident failed;
the detector then opened another incident on the same checkpoints that failed the same
way. Protection still freezes the affected workflows that are live."""

from __future__ import annotations

from pathlib import Path

from core.commands import run_command
from core.incidents.detectors import Finding
from core.incidents.kinds.data_integrity import data_integrity
from core.session import open_sim


def _finding(affected: list[str]) -> Finding:
    return Finding(
        "data-integrity",
        "DATA_INTEGRITY_ALERT",
        "coordination",
        "state_synchronization",
        "critical",
        {},
        evidence={"bad_checkpoints": [], "checkpoints_ok": [], "checkpoints_bad": {}},
        affected_workflows=affected,
    )


async def test_the_protection_steps_of_a_plan_run_when_an_affected_workflow_has_finished(tmp_path: Path) -> None:
    engine = await open_sim(tmp_path / "ops.db", demo=True)
    try:
        await engine.advance(300)
        s = engine.state
        done = await run_command(engine, "/coordination-hub cancel workflow_003")
        assert done["status"] == "success", done
        assert "workflow_003" not in s.workflows and "workflow_003" in s.finished
        draft = data_integrity(engine, _finding(["workflow_003", "workflow_002"]))
        protect = [st.command for st in draft.steps if "emergency-data-protection" in st.command]
        assert protect, [st.command for st in draft.steps]
        for command in protect:
            res = await run_command(engine, command)
            assert res["status"] == "success", (command, res)
        assert s.workflows["workflow_002"].frozen, "a live affected workflow is still frozen"
        assert "workflow_003" not in " ".join(protect)
    finally:
        await engine.close()


async def test_with_every_affected_workflow_finished_the_plan_still_protects_the_log(tmp_path: Path) -> None:
    engine = await open_sim(tmp_path / "ops.db", demo=True)
    try:
        await engine.advance(300)
        assert (await run_command(engine, "/coordination-hub cancel workflow_003"))["status"] == "success"
        draft = data_integrity(engine, _finding(["workflow_003"]))
        protect = [st.command for st in draft.steps if "emergency-data-protection" in st.command]
        assert len(protect) == 1 and "freeze_state_modifications" not in protect[0], protect
        before = {w for w, wf in engine.state.workflows.items() if wf.frozen}
        res = await run_command(engine, protect[0])
        assert res["status"] == "success", res
        assert "checkpoint" in res["result"] and res["result"]["backups"] is not None
        assert {w for w, wf in engine.state.workflows.items() if wf.frozen} == before, "nothing else is frozen"
        assert "Protect ;" not in draft.title and "workflow_003" not in draft.title, draft.title
    finally:
        await engine.close()
