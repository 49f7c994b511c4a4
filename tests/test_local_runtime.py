"""The local runtime with real processes: order, agent death, pause/resume, limits, retries."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from pathlib import Path
from typing import Any

import psutil
import pytest

from core.events import Event
from core.store import Store
from tests.local_harness import (
    PY,
    alive,
    drive,
    group_members,
    header,
    in_process_host,
    open_text,
    phased_workflow_toml,
    task_toml,
    wf_status,
    workflow_toml,
)

pytestmark = pytest.mark.skipif(not hasattr(os, "killpg"), reason="POSIX process groups")


async def test_dependency_order_and_nothing_left_behind(tmp_path: Path) -> None:
    log = tmp_path / "order.log"
    stamp = "import sys,time; open(sys.argv[1],'a').write(sys.argv[2]+' %f\\n' % time.time())"
    text = header() + phased_workflow_toml(
        "build",
        {
            "one": [task_toml("a", [PY, "-c", stamp, str(log), "a"], "shell")],
            "two": [
                task_toml("b", [PY, "-c", stamp, str(log), "b"], "shell"),
                task_toml(
                    "c",
                    f"{PY} -c \"import sys; open(sys.argv[1],'a').write('c 0\\n')\" {log}",
                    "shell",
                    depends_on=["b"],
                ),
            ],
        },
        priority=80,
        allocation={"cpu_cores": 2, "memory_gb": 2, "agents": 2},
    )
    engine, runtime, rec = await open_text(tmp_path / "r.db", text, tmp_path)
    try:
        # A host's pid is known once its launcher has forked it (opening does not wait on that).
        await drive(engine, lambda: len(runtime.host_pids()) == 2)
        hosts = dict(runtime.host_pids())
        assert all(alive(p) for p in hosts.values())
        await drive(engine, lambda: wf_status(engine, "build") == "completed")
    finally:
        await runtime.shutdown()
        await engine.close()
    names = [line.split()[0] for line in log.read_text().splitlines()]
    assert names == ["a", "b", "c"]
    started = [e.data["task"] for e in rec.of("TASK_STARTED")]
    assert started == ["build/a", "build/b", "build/c"]
    assert all(not alive(p) for p in hosts.values()), "agent hosts must not outlive a normal exit"


@pytest.mark.slow
async def test_sigkill_of_an_agent_is_noticed_and_its_task_completes_on_a_replacement(tmp_path: Path) -> None:
    code = (
        "import time,os\n"
        "start=float(os.environ['OPSDECK_RESUME_PROGRESS'])\n"
        "print('resumed from', start, flush=True)\n"
        "for i in range(int(start*10), 10):\n"
        "    print(f'OPSDECK_PROGRESS {(i+1)/10}', flush=True); time.sleep(0.15)\n"
    )
    pools = """
[[pools]]
name = "workers"
specializations = ["shell"]
size = 1
"""
    text = header(heartbeat=0.5, pools=pools) + workflow_toml(
        "w",
        task_toml("long", [PY, "-c", code], "shell"),
        phase="p",
        allocation={"cpu_cores": 1, "memory_gb": 1, "agents": 1},
    )
    engine, runtime, rec = await open_text(tmp_path / "r.db", text, tmp_path)
    try:
        await drive(engine, lambda: engine.state.tasks["w/long"].context.progress >= 0.3)
        victim = engine.state.tasks["w/long"].agent
        assert victim is not None
        pgid = runtime.task_pgid(victim)
        assert pgid is not None and group_members(pgid)
        os.kill(runtime.host_pids()[victim], signal.SIGKILL)
        killed_at = time.monotonic()
        await drive(engine, lambda: rec.of("AGENT_ERROR"), timeout=5)
        noticed = time.monotonic() - killed_at
        assert noticed < 0.5, f"a dead agent must be noticed within one heartbeat (0.5 s), took {noticed:.2f}s"
        err = rec.of("AGENT_ERROR")[0]
        assert err.data["agent"] == victim and "SIGKILL" in err.data["error"]
        moved = rec.of("TASK_REASSIGNED")[0]
        assert moved.data["task"] == "w/long" and moved.data["progress"] >= 0.3
        await drive(engine, lambda: wf_status(engine, "w") == "completed", timeout=15)
        done = rec.of("TASK_COMPLETED")[-1]
        assert done.data["agent"] != victim
        assert engine.state.agents[victim].status.value == "failed"
        replacement = done.data["agent"]
        assert engine.state.agents[replacement].pool == "workers"
        assert [e.data["agent"] for e in rec.of("AGENT_ALLOCATED")][-1] == replacement
        # the retry started from the context the dead agent last reported
        assert any(
            line.startswith("resumed from 0.") and float(line.split()[-1]) >= 0.3 for line in done.data["output"]
        )
        assert not group_members(pgid), "the dead agent's task processes must be killed"
    finally:
        await runtime.shutdown()
        await engine.close()


@pytest.mark.slow
async def test_pause_stops_the_processes_and_resume_continues_them(tmp_path: Path) -> None:
    code = (
        "import time,subprocess,sys\n"
        "child=subprocess.Popen([sys.executable,'-c','import time; time.sleep(30)'])\n"
        "for i in range(40):\n"
        "    print(f'OPSDECK_PROGRESS {(i+1)/40}', flush=True); time.sleep(0.05)\n"
        "child.kill()\n"
    )
    text = header() + workflow_toml(
        "low",
        task_toml("t", [PY, "-c", code], "shell"),
        phase="p",
        priority=20,
        allocation={"cpu_cores": 1, "memory_gb": 1, "agents": 1},
    )
    engine, runtime, rec = await open_text(tmp_path / "r.db", text, tmp_path)
    try:
        await drive(engine, lambda: engine.state.tasks["low/t"].context.progress >= 0.1)
        agent = engine.state.tasks["low/t"].agent
        pgid = runtime.task_pgid(agent)
        members = group_members(pgid)
        assert len(members) == 2, "the task and its child share the task's process group"
        engine.pause_workflow("low")

        def stopped() -> bool:
            return all(p.status() == psutil.STATUS_STOPPED for p in members)

        await drive(engine, stopped, timeout=5)

        async def wait(seconds: float) -> None:
            t0 = time.monotonic()
            while time.monotonic() - t0 < seconds:
                await asyncio.sleep(0.1)
                await engine.flush()

        await wait(0.6)  # the heartbeat after the stop carries the last printed progress
        before = engine.state.tasks["low/t"].context.progress
        await wait(1.0)  # two more heartbeats while stopped
        assert stopped()
        assert engine.state.tasks["low/t"].context.progress == before, "a stopped task makes no progress"
        engine.resume_workflow("low")
        await drive(engine, lambda: all(p.status() != psutil.STATUS_STOPPED for p in members), timeout=5)
        await drive(engine, lambda: wf_status(engine, "low") == "completed", timeout=15)
        assert not group_members(pgid)
    finally:
        await runtime.shutdown()
        await engine.close()
    done = rec.of("TASK_COMPLETED")[0].data  # its duration counts the 1.6 s it was stopped; its elapsed_s does not
    assert done["duration_s"] >= done["result"]["elapsed_s"] + 1.5, done
    # psutil's samples of the agent's tree and of the machine landed in the metrics table
    store = await Store.open(tmp_path / "r.db")
    try:
        cpu = await store.metrics("cpu_pct", agent)
        rss = await store.metrics("memory_mb", agent)
        system = await store.metrics("cpu_pct", "system")
        mem = await store.metrics("memory_pct", "system")
    finally:
        await store.close()
    assert len(cpu) >= 4 and len(rss) >= 4 and len(system) >= 4 and len(mem) >= 4
    assert all(v > 10 for _, v in rss), "host + task + child: tens of MB resident"
    assert all(0 <= v <= 100 for _, v in mem)


@pytest.mark.slow
async def test_memory_hungry_task_is_stopped_and_reported_and_retries_follow_the_file(tmp_path: Path) -> None:
    hog = "import time\nx=[]\nfor i in range(40):\n    x.append(bytearray(20*1024*1024)); time.sleep(0.02)\ntime.sleep(5)\n"
    text = (
        header()
        + workflow_toml(
            "mem",
            task_toml("hog", [PY, "-c", hog], "shell", memory_gb=0.15, retries=1),
            phase="p",
            allocation={"cpu_cores": 1, "memory_gb": 1, "agents": 1},
        )
        + workflow_toml(
            "slow",
            task_toml("sleepy", ["sleep", "30"], "shell", timeout_s=0.5, retries=0),
            phase="p",
            allocation={"cpu_cores": 1, "memory_gb": 1, "agents": 1},
        )
    )
    engine, runtime, rec = await open_text(tmp_path / "r.db", text, tmp_path)
    try:
        await drive(
            engine, lambda: wf_status(engine, "mem") == "failed" and wf_status(engine, "slow") == "failed", timeout=20
        )
    finally:
        await runtime.shutdown()
        await engine.close()
    fails = [e for e in rec.of("TASK_FAILED") if e.data["task"] == "mem/hog"]
    assert len(fails) == 2, "retries = 1: two attempts in all"
    assert fails[0].data["retry"] is True and fails[1].data["retry"] is False
    assert all("memory limit exceeded" in e.data["error"] for e in fails), [e.data["error"] for e in fails]
    slow = [e for e in rec.of("TASK_FAILED") if e.data["task"] == "slow/sleepy"]
    assert len(slow) == 1 and slow[0].data["error"].startswith("timeout after 0.5s")
    assert engine.state.settings["local_runtime"]["memory_limit"] in ("cgroup", "rlimit_as")


async def test_cpu_limit_by_niceness_follows_the_priority_band(tmp_path: Path) -> None:
    show = [PY, "-c", "import os; print('nice', os.nice(0))"]
    one = {"cpu_cores": 1, "memory_gb": 1, "agents": 1}
    text = header() + "".join(
        workflow_toml(wf, task_toml("t", show, "shell"), phase="p", priority=p, allocation=one)
        for wf, p in (("low", 10), ("high", 80))
    )
    engine, runtime, rec = await open_text(tmp_path / "r.db", text, tmp_path)
    try:
        await drive(
            engine, lambda: wf_status(engine, "low") == "completed" and wf_status(engine, "high") == "completed"
        )
    finally:
        await runtime.shutdown()
        await engine.close()
    out = {e.data["task"]: e.data["output"] for e in rec.of("TASK_COMPLETED")}
    base = os.nice(0)
    if runtime.mechanisms.cpu == "nice":
        assert out["low/t"] == [f"nice {min(base + 10, 19)}"] and out["high/t"] == [f"nice {base}"]
    assert engine.state.settings["local_runtime"]["cpu_limit"] == runtime.mechanisms.cpu


@pytest.mark.slow
async def test_integrity_check_agrees_with_the_log_while_real_agents_report(tmp_path: Path) -> None:
    """The live projection and a replay of the log are compared at one sequence number,
    even though reports keep arriving while the log is read back."""
    from core.incidents.integrity import consistency

    chatty = [
        PY,
        "-c",
        "import time\nfor i in range(30):\n    print(f'OPSDECK_PROGRESS {(i+1)/30} line {i}', flush=True); time.sleep(0.03)\n",
    ]
    tasks = [task_toml(f"t{i}", chatty, "shell") for i in range(6)]
    text = header(heartbeat=0.2) + workflow_toml(
        "w", *tasks, phase="p", allocation={"cpu_cores": 2, "memory_gb": 4, "agents": 2}
    )
    engine, runtime, rec = await open_text(tmp_path / "r.db", text, tmp_path)
    checks = 0
    try:
        while wf_status(engine, "w") != "completed":
            cons = await consistency(engine)
            assert cons["differs_in"] == [], cons.get("diffs")
            checks += 1
            await asyncio.sleep(0.02)
    finally:
        await runtime.shutdown()
        await engine.close()
    assert checks >= 5 and len(rec.of("TASK_PROGRESS")) >= 6


async def test_an_agent_death_with_no_retries_left_fails_the_task(tmp_path: Path) -> None:
    text = header() + workflow_toml(
        "once",
        task_toml("t", ["sleep", "30"], "shell", retries=0),
        phase="p",
        allocation={"cpu_cores": 1, "memory_gb": 1, "agents": 1},
    )
    engine, runtime, rec = await open_text(tmp_path / "r.db", text, tmp_path)
    try:
        await drive(engine, lambda: rec.of("TASK_STARTED"))
        agent = engine.state.tasks["once/t"].agent
        os.kill(runtime.host_pids()[agent], signal.SIGKILL)
        await drive(engine, lambda: wf_status(engine, "once") == "failed", timeout=5)
    finally:
        await runtime.shutdown()
        await engine.close()
    failed = rec.of("TASK_FAILED")
    assert len(failed) == 1 and failed[0].data["retry"] is False and "its agent died" in failed[0].data["error"]
    assert not [e for e in rec.of("TASK_REASSIGNED") if e.data["reason"] == "agent_failed"]
    assert len(rec.of("TASK_STARTED")) == 1, "no retry: the task does not start again"


async def test_a_late_agent_marked_unreachable_comes_back_with_its_next_report(tmp_path: Path) -> None:
    text = header(heartbeat=0.3) + workflow_toml(
        "w",
        task_toml("t", ["sleep", "1.5"], "shell"),
        phase="p",
        allocation={"cpu_cores": 1, "memory_gb": 1, "agents": 1},
    )
    engine, runtime, rec = await open_text(tmp_path / "r.db", text, tmp_path)
    try:
        await drive(engine, lambda: rec.of("TASK_STARTED"))
        agent = engine.state.tasks["w/t"].agent

        def of_agent(type_: str) -> list[Event]:
            return [e for e in rec.of(type_) if e.data.get("agent") == agent]

        # Counted from here: on a loaded machine the other agent, or this one before the
        # stop, may already have been late once; the stall below must cause its own.
        timeouts, reconnects = len(of_agent("AGENT_TIMEOUT")), len(of_agent("AGENT_RECONNECTED"))
        host = runtime.host_pids()[agent]
        os.kill(host, signal.SIGSTOP)  # the host is alive but silent: a stall, not a death
        try:
            await drive(engine, lambda: len(of_agent("AGENT_TIMEOUT")) > timeouts, timeout=60)
            assert engine.state.agents[agent].status.value == "unreachable"
        finally:
            os.kill(host, signal.SIGCONT)
        await drive(engine, lambda: len(of_agent("AGENT_RECONNECTED")) > reconnects, timeout=60)
        await drive(engine, lambda: wf_status(engine, "w") == "completed", timeout=60)
        assert not rec.of("AGENT_ERROR") and len(rec.of("TASK_STARTED")) == 1
        assert engine.state.agents[agent].status.value == "idle"
    finally:
        await runtime.shutdown()
        await engine.close()


def test_progress_line_format() -> None:
    from core.runtimes.task_run import parse_progress

    assert parse_progress("OPSDECK_PROGRESS 0.42 compiling m07") == (0.42, "compiling m07")
    assert parse_progress("OPSDECK_PROGRESS 42%") == (0.42, "")
    assert parse_progress("OPSDECK_PROGRESS 1.7") == (1.0, "")
    assert parse_progress("OPSDECK_PROGRESS -3 x") == (0.0, "x")
    assert parse_progress("OPSDECK_PROGRESS soon") is None
    assert parse_progress("OPSDECK_PROGRESS nan") is None and parse_progress("OPSDECK_PROGRESS nan%") is None
    assert parse_progress("OPSDECK_PROGRESS inf") == (1.0, "")
    assert parse_progress("progress 0.5") is None


async def test_tasks_spawn_without_python_in_the_child_yet_get_their_limits(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """No preexec_fn (it rules out vfork and runs Python between fork and exec): the
    limits are put on the child from the agent host, by pid."""
    import resource

    from core.runtimes import task_process, task_run

    seen: list[dict[str, object]] = []

    def spy(real: Any) -> Any:
        def spawn(path: str, argv: list[str], env: dict[str, str], **kw: object) -> int:
            seen.append(kw)
            return int(real(path, argv, env, **kw))

        return spawn

    for name in ("posix_spawn", "posix_spawnp"):  # posix_spawnp when the task's PATH is the host's
        monkeypatch.setattr(task_process.os, name, spy(getattr(os, name)))
    host = in_process_host(tmp_path)
    run = task_run.Run({"task": "w/t", "attempt": 1, "command": ["sleep", "30"], "memory_mb": 256, "nice": 5})
    assert host.runner.launch(run) is None
    try:
        assert run.proc is not None and run.proc.returncode is None
        assert seen and seen[0]["setsid"] is True  # posix_spawn: no Python code between fork and exec
        soft, hard = resource.prlimit(run.proc.pid, resource.RLIMIT_AS)
        assert soft == hard == 256 * 1024 * 1024
        assert psutil.Process(run.proc.pid).nice() == min(os.nice(0) + 5, 19)
    finally:
        await host.runner.stop_run(run, "test over")
        if run.proc is not None and run.proc.returncode is None:
            os.kill(run.proc.pid, signal.SIGKILL)
            await run.proc.wait()


@pytest.mark.slow  # ~30 s of wall time whatever the load: 3 samples of 4 s, then ~15 s until the stopped host is judged
async def test_slow_sampling_is_not_taken_for_silent_agents_and_a_stopped_host_still_is(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """On a loaded machine psutil's scan of /proc can take longer than a heartbeat, and
    the reports that arrive meanwhile wait in the sockets. Liveness is judged after they
    are read: a sampler stalled for several heartbeats at every sample marks no live
    agent unreachable, while a host that really stopped (SIGSTOP) still is.

    A check comes a sample interval after the last one, which heard a host that keeps
    beating: a host later than the limit's remaining 1.5 intervals is silent whatever the
    console does. The interval (1 s) leaves a loaded machine's hosts 1.5 s for that (an
    interval of 0.5 s left 0.75 s, and the test failed once under load)."""
    text = header(heartbeat=1.0) + workflow_toml(
        "w",
        task_toml("t", ["sleep", "60"], "shell"),
        phase="p",
        allocation={"cpu_cores": 1, "memory_gb": 1, "agents": 1},
    )
    engine, runtime, rec = await open_text(tmp_path / "r.db", text, tmp_path)
    sampler = runtime.local.sampler
    scan = sampler.trees

    scans: list[float] = []

    def slow_scan(roots):  # type: ignore[no-untyped-def]
        time.sleep(4.0)  # four heartbeats of 1 s: over the limit of 2.5 of them
        scans.append(time.monotonic())
        return scan(roots)

    try:
        await drive(engine, lambda: rec.of("TASK_STARTED"))
        monkeypatch.setattr(sampler, "trees", slow_scan)
        # Two slow samples judged (liveness is judged after each scan; the third has begun).
        await drive(engine, lambda: len(scans) >= 3, timeout=120)
        assert not rec.of("AGENT_TIMEOUT"), [e.data for e in rec.of("AGENT_TIMEOUT")]
        # The case that must still be seen: a host that is stopped is silent, slow sampling or not.
        agent = engine.state.tasks["w/t"].agent
        host = runtime.host_pids()[agent]
        os.kill(host, signal.SIGSTOP)
        try:
            await drive(engine, lambda: [e for e in rec.of("AGENT_TIMEOUT") if e.data["agent"] == agent], timeout=60)
            assert engine.state.agents[agent].status.value == "unreachable"
        finally:
            os.kill(host, signal.SIGCONT)
    finally:
        await runtime.shutdown()
        await engine.close()
