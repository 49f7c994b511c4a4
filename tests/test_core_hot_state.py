"""Hot state = live work: finished workflows leave the projection for the archive, yet
every listing and status still answers for them, and dispatch does not look at them."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from core.clock import VirtualClock
from core.commands import run_command
from core.config import Config
from core.engine import Engine
from core.runtimes.sim import SimRuntime
from core.verify import verify_store

AGENTS = 4


def _config() -> Config:
    cfg = Config()
    cfg.capacity.agents = AGENTS
    cfg.capacity.concurrent_workflows = 100
    return cfg


def _spec(wf_id: str, n: int = 6) -> dict[str, Any]:
    tasks = [
        {
            "id": f"t{i}",
            "specialization": "x",
            "duration_s": 1 + i % 3,
            "cpu": 0.1,
            "memory_gb": 0.1,
            "depends_on": [f"t{i - 1}"] if i else [],
        }
        for i in range(n)
    ]
    return {
        "id": wf_id,
        "priority": 50,
        "allocation": {"cpu_cores": 2, "memory_gb": 2, "agents": AGENTS},
        "phases": [{"name": "p1", "tasks": tasks[: n // 2]}, {"name": "p2", "tasks": tasks[n // 2 :]}],
    }


async def _engine(db: Path | None) -> tuple[Engine, VirtualClock]:
    clock = VirtualClock()
    if db is None:
        eng = Engine(config=_config(), clock=clock)
    else:
        eng = await Engine.open(db, config=_config(), clock=clock)
    eng.attach_runtime(SimRuntime(clock, heartbeat_s=1e9, sample_s=1e9))
    if not eng.state.pools:
        eng.create_pool("p", ["x"], 0, AGENTS)
        for _ in range(AGENTS):
            eng.add_agent("p")
    return eng, clock


async def _run(eng: Engine, wf_id: str, n: int = 6) -> None:
    eng.create_workflow(_spec(wf_id, n))
    eng.start_workflow(wf_id)
    await eng.advance(3600)


async def test_a_finished_workflow_leaves_the_hot_state_yet_every_listing_reports_it(tmp_path: Path) -> None:
    db = tmp_path / "h.db"
    eng, _ = await _engine(db)
    for i in range(3):
        await _run(eng, f"done{i}")
    eng.create_workflow(_spec("live"))
    await eng.flush()
    s = eng.state
    assert set(s.workflows) == {"live"} and all(k.startswith("live/") for k in s.tasks)
    assert set(s.finished) == {"done0", "done1", "done2"}
    snap = s.snapshot()
    assert set(snap["workflows"]) == {"live"} and len(snap["tasks"]) == 6, "a checkpoint holds live work only"

    r = await run_command(eng, "/workflow-status done1")
    assert r["status"] == "success" and r["result"]["status"] == "completed"
    assert [t["status"] for t in r["result"]["tasks"]] == ["completed"] * 6
    assert {t["task"] for t in r["result"]["tasks"]} == {f"done1/t{i}" for i in range(6)}
    r = await run_command(eng, "/coordination-hub list-workflows")
    rows = {w["workflow_id"]: w for w in r["result"]["workflows"]}
    assert set(rows) == {"done0", "done1", "done2", "live"}
    assert rows["done0"]["status"] == "completed" and rows["done0"]["tasks"] == {"completed": 6}
    r = await run_command(eng, "/coordination-hub get-status done2 '{\"verbose\": true}'")
    assert [t["status"] for t in r["result"]["workflows"][0]["task_detail"]] == ["completed"] * 6
    # A finished workflow is refused by operations that need a live one, and names stay taken.
    r = await run_command(eng, "/coordination-hub pause done0")
    assert r["status"] == "error" and r["error"]["code"] == "INVALID_STATE"
    r = await run_command(
        eng,
        '/coordination-hub create \'{"id": "done0", "phases": [{"name": "p", "tasks": [{"id": "a", "specialization": "x"}]}]}\'',
    )
    assert r["status"] == "error" and r["error"]["code"] == "WORKFLOW_EXISTS"
    # Dependencies on a finished workflow are met.
    spec = _spec("after")
    spec["depends_on"] = ["done0"]
    eng.create_workflow(spec)
    eng.start_workflow("after")
    await eng.advance(3600)
    assert eng.state.status_of("after").value == "completed"
    await eng.close()

    # Reopened: the summaries come from the checkpoint or replay, the tasks from the archive table.
    again, _ = await _engine(db)
    assert "done1" in again.state.finished and "done1" not in again.state.workflows
    r = await run_command(again, "/workflow-status done1")
    assert [t["status"] for t in r["result"]["tasks"]] == ["completed"] * 6
    rep = await verify_store(again.store)  # type: ignore[arg-type]
    assert rep.ok, rep.as_dict()
    await again.close()

    # Without any checkpoint the replay archives them again (the rows exist: nothing is duplicated).
    import sqlite3

    con = sqlite3.connect(db)
    con.execute("DELETE FROM checkpoints")
    con.commit()
    archived = con.execute("SELECT count(*) FROM archive").fetchone()[0]
    con.close()
    third, _ = await _engine(db)
    assert set(third.state.finished) == {"done0", "done1", "done2", "after"}
    r = await run_command(third, "/workflow-status done2")
    assert [t["status"] for t in r["result"]["tasks"]] == ["completed"] * 6
    await third.close()
    con = sqlite3.connect(db)
    assert con.execute("SELECT count(*) FROM archive").fetchone()[0] == archived
    con.close()


class CountingDict(dict):  # type: ignore[type-arg]
    """A dict that counts how many of its entries were read."""

    reads = 0

    def __getitem__(self, key: Any) -> Any:
        CountingDict.reads += 1
        return super().__getitem__(key)

    def get(self, key: Any, default: Any = None) -> Any:
        CountingDict.reads += 1
        return super().get(key, default)

    def values(self) -> Any:  # type: ignore[override]
        CountingDict.reads += len(self)
        return super().values()

    def items(self) -> Any:  # type: ignore[override]
        CountingDict.reads += len(self)
        return super().items()

    def __iter__(self) -> Any:
        CountingDict.reads += len(self)
        return super().__iter__()


async def _reads_running_one_after(history: int) -> int:
    eng, _ = await _engine(None)
    for i in range(history):
        await _run(eng, f"old{i}", 4)
    eng.auto_checkpoints = False  # a checkpoint lists finished summaries: counted here is the run itself
    eng.state.workflows = CountingDict(eng.state.workflows)
    eng.state.tasks = CountingDict(eng.state.tasks)
    eng.state.finished = CountingDict(eng.state.finished)
    CountingDict.reads = 0
    await _run(eng, "new", 40)
    assert eng.state.status_of("new").value == "completed"
    return CountingDict.reads


async def test_dispatch_work_does_not_grow_with_finished_history() -> None:
    """Counted, not timed: the workflow and task entries read while running one
    workflow are the same after 0 and after 40 finished workflows."""
    base = await _reads_running_one_after(0)
    after = await _reads_running_one_after(40)
    assert after <= base + 5, (base, after)


async def test_rollback_brings_a_finished_workflow_back_and_it_finishes_again(tmp_path: Path) -> None:
    eng, _clock = await _engine(tmp_path / "r.db")
    eng.create_workflow(_spec("w"))
    eng.start_workflow("w")
    await eng.advance(2)
    cp = await eng.checkpoint("manual", "mid-flight")
    await eng.advance(3600)
    assert "w" in eng.state.finished
    first = eng.state.finished["w"].finished_seq
    r = await run_command(eng, f"/workflow-recovery rollback '{{\"checkpoint\": {cp}}}'")
    assert r["status"] == "success", r
    assert "w" in eng.state.workflows and "w" not in eng.state.finished
    await eng.advance(3600)
    assert eng.state.finished["w"].finished_seq > first
    r = await run_command(eng, "/workflow-status w")
    assert [t["status"] for t in r["result"]["tasks"]] == ["completed"] * 6
    await eng.close()


async def test_a_big_submission_is_validated_once_and_built_as_the_models_would_be() -> None:
    """Tasks are built without a second validation: the result equals validated models;
    ``submit_workflow`` (chunked, yielding) gives the same state as ``create_workflow``,
    and a bad task is refused with its path in the whole spec, changing nothing."""
    from pydantic import ValidationError

    from core.models import Task

    spec = _spec("big", 300)
    spec["phases"][0]["tasks"][3]["inputs"] = {"k": 1}
    a, _ = await _engine(None)
    a.create_workflow(spec)
    b, _ = await _engine(None)
    await b.submit_workflow(spec)
    for k, t in a.state.tasks.items():
        assert Task.model_validate(t.model_dump()) == t
        assert b.state.tasks[k].model_dump() == t.model_dump()
    bad = _spec("bad", 10)
    bad["phases"][1]["tasks"][2]["cpu"] = -1
    seq = b.state.seq
    try:
        await b.submit_workflow(bad)
        raise AssertionError("accepted a negative cpu")
    except ValidationError as exc:
        assert exc.errors()[0]["loc"][:4] == ("phases", 1, "tasks", 2)
    assert b.state.seq == seq and not b.state.knows("bad")


async def test_a_finished_workflows_summary_counts_what_its_archived_tasks_hold() -> None:
    """The summary a finished workflow keeps (statuses, attempts, failed and retried tasks)
    says what its archived record's tasks say; a workflow with no failure and no retry
    has none listed."""
    eng, _ = await _engine(None)
    eng.create_workflow(_spec("clean", 4))
    eng.start_workflow("clean")
    await eng.advance(3600)
    clean = eng.state.finished["clean"]
    assert (clean.task_status, clean.attempts, clean.failed_tasks, clean.retried) == ({"completed": 4}, 4, [], {})

    spec = _spec("rough", 4)
    for t in spec["phases"][0]["tasks"] + spec["phases"][1]["tasks"]:
        t["depends_on"], t["duration_s"] = [], 10  # all four start at once
    spec["phases"] = [{"name": "p1", "tasks": spec["phases"][0]["tasks"] + spec["phases"][1]["tasks"]}]
    eng.create_workflow(spec)
    eng.start_workflow("rough")
    await eng.advance(1)
    busy = sorted(eng.state.tasks[k].agent or "" for k in eng.state.workflows["rough"].tasks)
    eng.runtime.fail_agent(busy[0])  # type: ignore[union-attr]  # its task is reassigned: attempted twice
    eng.add_agent("p")
    await eng.advance(1)
    retried = next(k for k in eng.state.workflows["rough"].tasks if eng.state.tasks[k].attempts == 2)
    other = next(k for k in eng.state.workflows["rough"].tasks if eng.state.tasks[k].agent and k != retried)
    eng.state.tasks[other].attempts = eng.config.retries.attempts  # no retry left: the workflow fails
    eng.bridge.task_failed(eng.state.tasks[other].agent or "", other, "boom")
    await eng.advance(3600)
    done = eng.state.finished["rough"]
    record = await eng.archived("rough")
    assert record is not None
    statuses: dict[str, int] = {}
    for t in record["tasks"]:
        statuses[t["status"]] = statuses.get(t["status"], 0) + 1
    assert done.status.value == "failed" and done.task_count == 4
    assert done.task_status == dict(sorted(statuses.items())) and "failed" in done.task_status
    assert done.attempts == sum(t["attempts"] for t in record["tasks"])
    assert done.failed_tasks == [t["id"] for t in record["tasks"] if t["status"] == "failed"] == [other]
    assert done.retried == {t["id"]: t["attempts"] for t in record["tasks"] if t["attempts"] > 1}
    assert retried in done.retried
