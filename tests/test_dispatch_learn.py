"""What a real runtime's task commands are learnt from (``Dispatch.learn``).

A workflow created from a model (a workflow file's specs) hands its tasks to the
runtime as they were validated where they entered; one created from a dict (a
command's submission) or read back from the log is validated from the record. Either
way the runtime holds the same tasks the log records; a refused creation teaches it
nothing.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from core.config import Config
from core.engine import Engine, EngineError
from core.events import Event
from core.models import PhaseSpec, Resources, TaskSpec, WorkflowSpec
from core.runtimes.adoption import Adoption
from core.runtimes.dispatch import Dispatch
from core.runtimes.fleet import Fleet, Timing
from core.runtimes.limits import Mechanisms
from core.runtimes.local_hosts import LocalLinks, ProcessHost
from core.runtimes.sampler import Sampler


def _parts(tmp_path: Path) -> tuple[Engine, Dispatch[ProcessHost], list[Event]]:
    """An engine, a real runtime's task commands bound to it, and the events it folds."""
    eng = Engine(config=Config())
    folded: list[Event] = []
    eng.observe(folded.append)
    fleet: Fleet[ProcessHost] = Fleet(Timing(), actor="test")
    fleet.engine = eng
    d = Dispatch(fleet, LocalLinks(fleet, Adoption(b"secret")), tmp_path, Mechanisms("rlimit_as", "nice"), Sampler())
    eng.observe(d.on_event)
    return eng, d, folded


def _spec(wid: str, alloc: Resources | None = None) -> WorkflowSpec:
    tasks = [
        TaskSpec(id="a", specialization="x", command=["echo", "a"], env={"K": "v"}, cwd="/w", timeout_s=3),
        TaskSpec(id="b", specialization="x", command="ls -l", shell=True, depends_on=["a"], retries=2),
    ]
    spec = WorkflowSpec(id=wid, phases=[PhaseSpec(name="p", tasks=tasks)])
    return spec if alloc is None else spec.model_copy(update={"allocation": alloc})


def _recorded(folded: list[Event], wid: str) -> dict[str, TaskSpec]:
    """The tasks as the log records them, validated."""
    (data,) = [e.data["spec"] for e in folded if e.type == "WORKFLOW_CREATED" and e.data["workflow_id"] == wid]
    spec = WorkflowSpec.model_validate(data)
    return {f"{wid}/{t.id}": t for ph in spec.phases for t in ph.tasks}


def test_a_model_creates_and_its_own_tasks_are_learnt_equal_to_the_record(tmp_path: Path) -> None:
    eng, d, folded = _parts(tmp_path)
    spec = _spec("w")
    eng.create_workflow(spec)
    assert eng.creating is None  # only while the creation is recorded
    assert d.specs["w/a"] is spec.phases[0].tasks[0] and d.specs["w/b"] is spec.phases[0].tasks[1]
    assert d.specs == _recorded(folded, "w")
    assert d.attempts_allowed("w/b") == 3 and d.attempts_allowed("w/a") is None


def test_a_dict_creates_and_the_record_is_validated(tmp_path: Path) -> None:
    eng, d, folded = _parts(tmp_path)
    eng.create_workflow(_spec("w").model_dump())
    assert d.specs == _recorded(folded, "w") and set(d.specs) == {"w/a", "w/b"}
    assert d.specs["w/a"].command == ["echo", "a"] and d.specs["w/b"].shell is True


def test_a_refused_creation_teaches_nothing(tmp_path: Path) -> None:
    """The must-not: a model refused (its allocation over the per-workflow limit)."""
    eng, d, _ = _parts(tmp_path)
    lim = eng.config.workflow_limits
    with pytest.raises(EngineError):
        eng.create_workflow(_spec("big", Resources(cpu_cores=lim.cpu_cores + 1, memory_gb=1, agents=1)))
    assert eng.creating is None and d.specs == {} and "big" not in eng.state.workflows
