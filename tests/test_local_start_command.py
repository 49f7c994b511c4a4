"""The context a start command carries (:func:`core.runtimes.dispatch.context_json`):
the shared empty context's dict is built without pydantic and must stay what pydantic
gives for it, field for field and in the same order; any other context is dumped."""

from __future__ import annotations

from core.models import DONE_CONTEXT, EMPTY_CONTEXT, TaskContext
from core.runtimes.dispatch import context_json


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
