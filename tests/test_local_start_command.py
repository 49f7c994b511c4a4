"""What a start command carries, built for speed and compared here with what it stands
for: the context (:func:`core.runtimes.dispatch.context_json`: the shared empty
context's dict is built without pydantic and must stay what pydantic gives for it,
field for field and in the same order; any other context is dumped) and the run's
directories (joined as strings: the ones :class:`~core.runtimes.dispatch.Dispatch`
names as paths)."""

from __future__ import annotations

from pathlib import Path

from core.models import DONE_CONTEXT, EMPTY_CONTEXT, Task, TaskContext
from core.runtimes.adoption import Adoption
from core.runtimes.dispatch import Dispatch, context_json
from core.runtimes.fleet import Fleet, Timing
from core.runtimes.limits import Mechanisms
from core.runtimes.local_hosts import LocalLinks, ProcessHost
from core.runtimes.sampler import Sampler


def test_the_empty_context_is_what_pydantic_dumps() -> None:
    want = EMPTY_CONTEXT.model_dump(mode="json")
    got = context_json(EMPTY_CONTEXT)
    assert got == want and list(got) == list(want)
    got["inputs"]["x"] = 1  # each start gets its own dict: the next one is untouched
    assert context_json(EMPTY_CONTEXT) == want


def test_other_contexts_are_dumped_as_they_are() -> None:
    own = TaskContext(inputs={"a": 1}, progress=0.5, partial_results={"k": [1, 2]}, last_output=["line"])
    assert context_json(own) == own.model_dump(mode="json") != context_json(EMPTY_CONTEXT)
    assert context_json(DONE_CONTEXT) == DONE_CONTEXT.model_dump(mode="json")
    assert context_json(DONE_CONTEXT)["progress"] == 1.0


async def test_a_start_command_s_directories_are_the_ones_the_dispatch_names(tmp_path: Path) -> None:
    """The start command joins a run's TMPDIR and the run directory as strings (no Path a
    start): they are the directories ``temp_dir()`` and ``shared_dir()`` name, for tasks
    of two workflows and later attempts. A task without a command sends no start."""
    fleet: Fleet[ProcessHost] = Fleet(Timing(), actor="test")
    links = LocalLinks(fleet, Adoption(b"secret"))
    d = Dispatch(fleet, links, tmp_path / "run", Mechanisms("rlimit_as", "nice"), Sampler())
    tasks = [
        {"id": "t", "specialization": "x", "command": "true", "env": {"A": "1"}},
        {"id": "idle", "specialization": "x"},
    ]
    for wf in ("w", "w2"):
        d.learn({"id": wf, "phases": [{"name": "p", "tasks": tasks}]})
    h = fleet.hosts["a1"] = ProcessHost("a1", str(tmp_path / "a1.sock"))
    for wf, attempt in (("w", 1), ("w2", 3)):
        task = Task(id=f"{wf}/t", workflow=wf, phase="p", specialization="x", attempts=attempt)
        d.start_task("a1", task)
        (msg,) = h.outbox
        h.outbox.clear()
        env = msg["env"]
        assert env["TMPDIR"] == env["TMP"] == env["TEMP"] == str(d.temp_dir(task.id, attempt))
        assert env["OPSDECK_RUN_DIR"] == str(d.shared_dir()) and env["A"] == "1"
    d.start_task("a1", Task(id="w/idle", workflow="w", phase="p", specialization="x", attempts=1))
    assert h.outbox == []
