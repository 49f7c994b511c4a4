"""One meaning of "the tasks on unreachable agents" and "the tasks kept there"
(``core.engine.liveness``): the standing reassignment, the partition commands, the
partition gate and the console's preview all read these. A task on a reachable agent
and an unreachable agent holding none never count; the tasks are kept only while the
distributed protocol in force says so."""

from __future__ import annotations

import json
from typing import Any

from core.commands import run_command
from core.engine.liveness import kept_on_unreachable, protocol_keeps_tasks, tasks_on_unreachable
from core.event_types import EVENTS
from core.models import Agent, AgentStatus
from core.projection import State

PROTOCOL = "monitoring.distributed_protocols"


def _fleet() -> State:
    s = State(EVENTS.folds)
    for aid, status, task in (
        ("a3", AgentStatus.UNREACHABLE, "w1/t3"),  # counts
        ("a1", AgentStatus.UNREACHABLE, "w1/t1"),  # counts
        ("a2", AgentStatus.UNREACHABLE, None),  # cut off, holding nothing
        ("b1", AgentStatus.BUSY, "w1/t2"),  # reachable, holding a task
        ("p1", AgentStatus.PAUSED, "w2/t1"),  # reachable, paused with its task
        ("f1", AgentStatus.FAILED, None),
    ):
        s.agents[aid] = Agent(id=aid, pool="p", specializations=[], status=status, current_task=task)
    return s


def test_tasks_on_unreachable_agents_are_those_cut_off_agents_hold() -> None:
    s = _fleet()
    assert tasks_on_unreachable(s) == {"a1": "w1/t1", "a3": "w1/t3"}
    assert list(tasks_on_unreachable(s)) == ["a1", "a3"], "in agent id order"
    s.agents["a1"].status = AgentStatus.BUSY  # heard again
    assert tasks_on_unreachable(s) == {"a3": "w1/t3"}


def test_tasks_are_kept_only_while_the_protocol_in_force_keeps_them() -> None:
    s = _fleet()
    assert not protocol_keeps_tasks(s) and kept_on_unreachable(s) == {}, "no protocol: nothing is kept"
    s.settings[PROTOCOL] = {"keep_tasks_on_unreachable": False}
    assert not protocol_keeps_tasks(s) and kept_on_unreachable(s) == {}
    s.settings[PROTOCOL] = {"keep_tasks_on_unreachable": True}
    assert protocol_keeps_tasks(s)
    assert kept_on_unreachable(s) == {"a1": "w1/t1", "a3": "w1/t3"}
    s.settings[PROTOCOL] = {"keep_tasks_on_unreachable": True, "closed": True}
    assert not protocol_keeps_tasks(s) and kept_on_unreachable(s) == {}, "a closed protocol keeps nothing"
    s.settings[PROTOCOL] = "keep"  # not a protocol record
    assert not protocol_keeps_tasks(s)


async def _cut_off_busy_agent() -> tuple[Any, str, str]:
    from core.session import memory_sim

    eng = memory_sim(seed=0)
    await eng.advance(300)
    a = sorted(x.id for x in eng.state.agents.values() if x.status is AgentStatus.BUSY)[0]
    task = eng.state.agents[a].current_task
    assert task is not None
    eng.runtime.partition([a])  # type: ignore[union-attr]
    while eng.state.agents[a].status is not AgentStatus.UNREACHABLE:
        await eng.advance(5)
    return eng, a, task


async def test_the_protocol_command_reports_as_kept_only_the_cut_off_agents_tasks() -> None:
    eng, a, task = await _cut_off_busy_agent()
    try:
        reachable = sorted(x.current_task for x in eng.state.agents.values() if x.status is AgentStatus.BUSY)
        assert reachable, "other agents hold tasks"
        body = json.dumps({"coordination_adaptations": [{"adaptation": "agent_autonomy_increase"}]})
        res = await run_command(eng, f"/coordination-hub activate-distributed-protocols '{body}'")
        assert res["status"] == "success", res
        assert res["result"]["kept_on_isolated_agents"] == [task]
        assert res["result"]["moved"] == [] and eng.state.tasks[task].agent == a, "kept where it runs"
        plan = await run_command(eng, "/workflow-recovery recovery-plan")
        assert "/resource-manager agent-reallocation" in [st["command"] for st in plan["result"]["steps"]]
    finally:
        await eng.close()


async def test_no_reallocation_is_suggested_for_cut_off_agents_holding_nothing() -> None:
    eng, a, task = await _cut_off_busy_agent()
    try:
        res = await run_command(eng, "/resource-manager agent-reallocation")
        assert res["status"] == "success", res
        assert [m["task"] for m in res["result"]["moved"]] == [task]
        assert eng.state.agents[a].status is AgentStatus.UNREACHABLE and tasks_on_unreachable(eng.state) == {}
        plan = await run_command(eng, "/workflow-recovery recovery-plan")
        assert "/resource-manager agent-reallocation" not in [st["command"] for st in plan["result"]["steps"]]
    finally:
        await eng.close()
