"""A resource exhaustion whose protected workflow ends before validation concludes. The
criterion no longer waits for it (it can never progress), but its outcome did not say
so: the protected workflow's fate was judged by nobody and named nowhere. The credit's
basis now says it is not judged and why; a protected workflow that kept running is not
named."""

from __future__ import annotations

import pytest

from core.commands import run_command
from core.events import Event
from core.incident_models import Incident
from core.models import WorkflowStatus

from .conftest import drill_until
from .test_incidents_validation_ended import LIMIT_S, _exhaustion_validating


async def _ended(cancel: bool) -> tuple[Incident, str]:
    seen: list[Event] = []
    drill, protected = await _exhaustion_validating(seen)
    eng = drill.engine
    if cancel:
        res = await run_command(eng, f"/coordination-hub cancel {protected}", actor="tester")
        assert res["status"] == "success", res
        assert eng.state.status_of(protected) is WorkflowStatus.CANCELLED
    inc = drill.incident()
    assert inc is not None
    await drill_until(
        drill, lambda: eng.state.incidents[inc.id].status in ("resolved", "failed"), "the incident ended", LIMIT_S
    )
    return eng.state.incidents[inc.id], protected


@pytest.mark.parametrize("cancel", [True, False], ids=["cancelled", "running"])
async def test_a_protected_workflow_that_ended_is_named_not_judged(cancel: bool) -> None:
    inc, protected = await _ended(cancel)
    assert inc.status == "resolved", inc.outcome
    assert inc.outcome.validations is not None
    credit = inc.outcome.validations["utilisation_safe"]["credit"]
    if cancel:
        # main: the basis did not name it
        assert f"not judged: protected workflow {protected} cancelled" in credit["basis"], credit
        assert credit["not_judged"] == {protected: "cancelled"}
    else:
        assert "not judged" not in credit["basis"] and "not_judged" not in credit, credit
