"""The Ray runtime on a real Ray instance: one instance for the module, a few short tasks.

A workflow file completes (with the local runtime's event types, ``opsdeck verify``
passes, a local instance started for the run is gone after it); pause really stops the
task's processes on the node; ``ray.kill`` of an agent's actor fails the agent and the
task completes once on a replacement; a host killed mid-run is restarted and adopts the
live actors without running a task twice; an actor that stops answering is unreachable
and comes back without its task running twice.
"""

from __future__ import annotations

import asyncio
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest
import ray

from core.runtimes.ray import RayCluster, RayRuntime, namespace_for, open_ray
from core.store import Store
from core.workflow_file import parse_workflow_text
from tests.conftest import REPO, opsdeck_cmd, wait_for
from tests.local_harness import (
    PY,
    Recorder,
    chain_workflow,
    drive,
    group_members,
    header,
    task_toml,
    wf_status,
    workflow_toml,
)
from tests.test_restart_starts import starts
from tui.widgets.agent_pools import agent_nodes

QUICK = REPO / "examples" / "quick.toml"

# One Ray instance for the module: under pytest-xdist (--dist loadgroup) its tests share a worker.
pytestmark = pytest.mark.xdist_group("ray")


@pytest.fixture(scope="module")
def ray_address() -> Iterator[str]:
    """One local Ray instance (2 CPUs, loopback only) for every test here; this process is its driver."""
    cluster = RayCluster.join(None, 2, {"opsdeck_spec_shell": 1000.0})
    try:
        yield ray.get_runtime_context().gcs_address
    finally:
        cluster.leave()


async def open_text(db: Path, text: str, base: Path) -> tuple[object, RayRuntime, Recorder]:
    wf = parse_workflow_text(text, "test.toml")
    rec = Recorder()
    engine, runtime = await open_ray(db, wf, wf.specs(base), subscriber=rec)
    return engine, runtime, rec


def actors_in(db: Path) -> list[str]:
    ns = namespace_for(db)
    return sorted(a["name"] for a in ray.util.list_named_actors(all_namespaces=True) if a["namespace"] == ns)


def run_cmd(f: Path, db: Path, *extra: str) -> list[str]:
    return opsdeck_cmd("run", str(f), "--db", str(db), "--headless", "--runtime", "ray", *extra)


def event_types(stdout: str) -> set[str]:
    return {line.split(":", 1)[0] for line in stdout.splitlines() if line and line[0].isupper() and ":" in line}


@pytest.mark.slow
def test_quick_completes_on_a_local_instance_with_the_local_runtimes_events(
    ray_address: str, tmp_path: Path, cli_env: dict[str, str]
) -> None:
    # Without --address: opsdeck starts its own Ray instance and stops it at the end.
    db = tmp_path / "ray.db"
    ray_run = subprocess.run(run_cmd(QUICK, db), capture_output=True, text=True, timeout=120, env=cli_env)
    assert ray_run.returncode == 0, ray_run.stderr[-3000:]
    assert "runtime ray on a local Ray instance" in ray_run.stderr
    temp = re.search(r"/tmp/opsdeck-ray-\w+", ray_run.stderr).group(0)
    assert not Path(temp).exists(), "the instance's temp dir is removed"
    assert not [p for p in psutil.process_iter(["cmdline"]) if temp in " ".join(p.info["cmdline"] or [])], (
        "no process of the instance opsdeck started outlives the run"
    )
    verify = subprocess.run(
        opsdeck_cmd("verify", "--db", str(db)), capture_output=True, text=True, timeout=60, env=cli_env
    )
    assert verify.returncode == 0 and "chain verified" in verify.stdout, verify.stdout + verify.stderr

    local = subprocess.run(
        opsdeck_cmd("run", str(QUICK), "--db", str(tmp_path / "local.db"), "--headless"),
        capture_output=True,
        text=True,
        timeout=120,
        env=cli_env,
    )
    assert local.returncode == 0, local.stderr[-2000:]
    assert event_types(ray_run.stdout) == event_types(local.stdout)
    assert '"output":["hello from opsdeck"]' in ray_run.stdout and '"progress":1.0' in ray_run.stdout


@pytest.mark.slow
async def test_pause_stops_the_task_processes_on_the_node_and_resume_continues(
    ray_address: str, tmp_path: Path
) -> None:
    code = (
        "import time,subprocess,sys\n"
        "child=subprocess.Popen([sys.executable,'-c','import time; time.sleep(30)'])\n"
        "for i in range(50):\n"
        "    print(f'OPSDECK_PROGRESS {(i+1)/50}', flush=True); time.sleep(0.05)\n"
        "child.kill()\n"
    )
    text = header() + workflow_toml(
        "low",
        task_toml("t", [PY, "-c", code], "shell", cpu=0.1),
        phase="p",
        priority=20,
        allocation={"cpu_cores": 1, "memory_gb": 1, "agents": 1},
    )
    engine, runtime, _rec = await open_text(tmp_path / "r.db", text, tmp_path)
    try:
        # the capacity is the cluster's, as Ray counts it (the config sets none here)
        cap = engine.config.capacity
        assert cap.bases == {"cpu_cores": "cluster", "memory_gb": "cluster"}
        assert cap.cpu_cores == round(float(ray.cluster_resources()["CPU"]), 2)
        await drive(engine, lambda: engine.state.tasks["low/t"].context.progress >= 0.1, timeout=60)
        agent = engine.state.tasks["low/t"].agent
        node = runtime.node_of(agent)
        assert node["pid"] != os.getpid() and psutil.Process(node["pid"]).is_running(), (
            "the task runs under a Ray worker"
        )
        pgid = runtime.task_pgid(agent)
        members = group_members(pgid)
        assert len(members) == 2, "the task and its child share the task's process group"
        assert psutil.Process(pgid).ppid() == node["pid"], "the actor's worker started the task"
        engine.pause_workflow("low")

        def stopped() -> bool:
            return all(p.status() == psutil.STATUS_STOPPED for p in members)

        await drive(engine, stopped, timeout=10)
        # Lines printed before the stop may still be on their way (pipe, actor, poll) on a
        # loaded machine: wait until the progress holds over two heartbeats, then watch.
        before, held_since = engine.state.tasks["low/t"].context.progress, time.monotonic()
        deadline = time.monotonic() + 20
        while time.monotonic() - held_since < 1.2 and time.monotonic() < deadline:
            await asyncio.sleep(0.1)
            await engine.flush()
            now = engine.state.tasks["low/t"].context.progress
            if now != before:
                before, held_since = now, time.monotonic()
        assert before < 1.0, "the task was stopped before it finished"
        t0 = time.monotonic()
        while time.monotonic() - t0 < 1.2:  # two heartbeats while stopped
            await asyncio.sleep(0.1)
            await engine.flush()
        assert stopped()
        assert engine.state.tasks["low/t"].context.progress == before, "a stopped task makes no progress"
        engine.resume_workflow("low")
        await drive(engine, lambda: all(p.status() != psutil.STATUS_STOPPED for p in members), timeout=10)
        await drive(engine, lambda: wf_status(engine, "low") == "completed", timeout=30)
        assert not group_members(pgid)
        on = engine.state.settings["ray_agent_nodes"][agent]
        assert on["node"].endswith("(127.0.0.1)") and on["pid"] == node["pid"], "the node is in the log"
        limits = engine.state.settings["ray_node_limits"][on["node"]]
        assert limits["memory_limit"] in ("cgroup", "rlimit_as") and limits["task_dies_with_actor"].startswith(
            "setpriv"
        )
        assert agent_nodes(engine.state.settings, [engine.state.agents[agent]]).endswith("(127.0.0.1) ×1")
        await drive(engine, lambda: engine.telemetry.get("ray_cpus", "cluster").last() == 2.0, timeout=10)
    finally:
        await runtime.shutdown()
        await engine.close()
    assert actors_in(tmp_path / "r.db") == [], "a normal end retires every actor"
    store = await Store.open(tmp_path / "r.db")
    try:
        rss = await store.metrics("memory_mb", agent)
        node_cpu = await store.metrics("cpu_pct", "node:127.0.0.1")
    finally:
        await store.close()
    assert rss and all(v > 10 for _, v in rss), "psutil of the worker's tree, measured on the node"
    assert node_cpu, "per-node machine usage"


@pytest.mark.slow
async def test_ray_kill_of_an_actor_fails_the_agent_and_the_task_completes_once_on_a_replacement(
    ray_address: str, tmp_path: Path
) -> None:
    code = (
        "import time,os\n"
        "start=float(os.environ['OPSDECK_RESUME_PROGRESS'])\n"
        "print('resumed from', start, flush=True)\n"
        "for i in range(int(start*10), 10):\n"
        "    print(f'OPSDECK_PROGRESS {(i+1)/10}', flush=True); time.sleep(0.2)\n"
    )
    pools = """
[[pools]]
name = "workers"
specializations = ["shell"]
size = 1
"""
    text = header(heartbeat=0.5, pools=pools) + workflow_toml(
        "w",
        task_toml("long", [PY, "-c", code], "shell", cpu=0.1),
        phase="p",
        allocation={"cpu_cores": 1, "memory_gb": 1, "agents": 1},
    )
    engine, runtime, rec = await open_text(tmp_path / "r.db", text, tmp_path)
    try:
        await drive(engine, lambda: engine.state.tasks["w/long"].context.progress >= 0.3, timeout=60)
        victim = engine.state.tasks["w/long"].agent
        pgid = runtime.task_pgid(victim)
        assert pgid is not None and group_members(pgid)
        runtime.fail_agent(victim)  # the contract's fault: ray.kill of its actor
        killed = time.monotonic()
        await drive(engine, lambda: rec.of("AGENT_ERROR"), timeout=20)
        err = rec.of("AGENT_ERROR")[0]
        assert err.data["agent"] == victim and "ray.kill" in err.data["error"], err.data
        assert rec.of("TASK_REASSIGNED")[0].data["progress"] >= 0.3
        await drive(engine, lambda: len(rec.of("AGENT_ALLOCATED")) > 1, timeout=20)
        assert rec.of("AGENT_ALLOCATED")[-1].actor == "ray-runtime", "the replacement says which runtime added it"
        await drive(engine, lambda: [e for e in rec.of("TASK_STARTED") if e.data["agent"] != victim], timeout=30)
        print(f"ray.kill -> task running again on a replacement actor: {time.monotonic() - killed:.2f} s")
        await drive(engine, lambda: wf_status(engine, "w") == "completed", timeout=30)
        done = [e for e in rec.of("TASK_COMPLETED") if e.data["task"] == "w/long"]
        assert len(done) == 1 and done[0].data["agent"] != victim, "completed once, by the replacement"
        assert engine.state.agents[victim].status.value == "failed"
        assert any(
            line.startswith("resumed from 0.") and float(line.split()[-1]) >= 0.3 for line in done[0].data["output"]
        )
        assert not group_members(pgid), "the dead actor's task processes are gone"
    finally:
        await runtime.shutdown()
        await engine.close()


@pytest.mark.slow
async def test_a_stopped_actor_is_unreachable_then_reconnects_and_its_task_completes_once(
    ray_address: str, tmp_path: Path
) -> None:
    pools = """
[[pools]]
name = "workers"
specializations = ["shell"]
size = 1
"""
    text = header(heartbeat=0.3, pools=pools) + workflow_toml(
        "w",
        task_toml("t", ["sleep", "1.5"], "shell", cpu=0.1),
        phase="p",
        allocation={"cpu_cores": 1, "memory_gb": 1, "agents": 1},
    )
    engine, runtime, rec = await open_text(tmp_path / "r.db", text, tmp_path)
    try:
        await drive(engine, lambda: rec.of("TASK_STARTED"), timeout=60)
        agent = engine.state.tasks["w/t"].agent
        worker = runtime.node_of(agent)["pid"]
        await drive(engine, lambda: engine.state.agents[agent].status.value == "busy", timeout=15)
        timeouts, reconnects = len(rec.of("AGENT_TIMEOUT")), len(rec.of("AGENT_RECONNECTED"))
        os.kill(worker, signal.SIGSTOP)  # alive but silent: the actor's worker is stopped
        try:
            await drive(engine, lambda: len(rec.of("AGENT_TIMEOUT")) > timeouts, timeout=15)
            assert engine.state.agents[agent].status.value == "unreachable"
            await asyncio.sleep(1.6)  # the task (its own process group, not stopped) ends meanwhile
        finally:
            os.kill(worker, signal.SIGCONT)
        await drive(engine, lambda: len(rec.of("AGENT_RECONNECTED")) > reconnects, timeout=15)
        assert rec.of("AGENT_RECONNECTED")[-1].data["agent"] == agent
        await drive(engine, lambda: wf_status(engine, "w") == "completed", timeout=15)
        assert engine.state.agents[agent].status.value == "idle"
        assert not rec.of("AGENT_ERROR") and len(rec.of("TASK_STARTED")) == 1 and len(rec.of("TASK_COMPLETED")) == 1
    finally:
        await runtime.shutdown()
        await engine.close()


@pytest.mark.slow
def test_a_killed_host_restarts_and_adopts_the_live_actors(
    ray_address: str, tmp_path: Path, cli_env: dict[str, str]
) -> None:
    steps = 4
    log = tmp_path / "ran.log"
    f = chain_workflow(tmp_path, log, steps, sleep_s=0.3, cpu=0.1)
    db = tmp_path / "run.db"
    first = subprocess.Popen(
        run_cmd(f, db, "--address", ray_address),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        env=cli_env,
        start_new_session=True,
    )
    try:

        def two_steps_ran() -> bool:
            assert first.poll() is None, first.stderr.read().decode()[-2000:] if first.stderr else ""
            return log.exists() and len(log.read_text().splitlines()) >= 2

        wait_for(two_steps_ran, "the run to start (two steps of the chain ran)", 60)
    finally:
        first.send_signal(signal.SIGKILL)
        first.wait(10)
    assert actors_in(db) == ["agent_001", "agent_002"], "the actors outlive the killed host"

    second = subprocess.run(
        run_cmd(f, db, "--address", ray_address), capture_output=True, text=True, timeout=120, env=cli_env
    )
    assert second.returncode == 0, second.stderr[-3000:]
    assert "adopted=['agent_001', 'agent_002']" in second.stderr
    assert "# opsdeck run: finding 2 Ray actors of the last run…" in second.stderr, second.stderr[-3000:]
    assert "# opsdeck run: found 2 of 2 Ray actors of the last run in " in second.stderr, second.stderr[-3000:]
    ran = [line.split()[0] for line in log.read_text().splitlines()]
    assert ran == [f"s{i}" for i in range(steps)], f"each task runs exactly once, in order: {ran}"
    assert starts(db) == {(f"chain/s{i}", 1): 1 for i in range(steps)}, "each run's start recorded once"
    assert "AGENT_ERROR" not in second.stdout and "WORKFLOW_COMPLETED" in second.stdout
    assert actors_in(db) == [], "a normal exit retires the actors"
    assert ray.cluster_resources().get("CPU") == 2.0, "a joined cluster is not shut down"


@pytest.mark.slow
def test_serve_on_ray_runs_the_file_and_a_sigterm_retires_every_actor(
    ray_address: str, tmp_path: Path, cli_env: dict[str, str]
) -> None:
    log = tmp_path / "ran.log"
    f = chain_workflow(tmp_path, log, 1, sleep_s=0.3, cpu=0.1)
    db = tmp_path / "serve.db"
    serve = subprocess.Popen(
        opsdeck_cmd("serve", str(f), "--db", str(db), "--runtime", "ray", "--address", ray_address),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        env=cli_env,
    )
    try:

        def step_ran() -> bool:
            assert serve.poll() is None, serve.stderr.read()[-2000:] if serve.stderr else ""
            return log.exists() and bool(log.read_text())

        wait_for(step_ran, "the served file's first step to run", 60)
        assert log.read_text().split()[0] == "s0"
        assert actors_in(db) == ["agent_001", "agent_002"]
        serve.send_signal(signal.SIGTERM)
        _, err = serve.communicate(timeout=60)
    finally:
        if serve.poll() is None:
            serve.kill()
            serve.wait()
    assert serve.returncode == 0, err[-2000:]
    assert "(ray)" in err and "SIGTERM received" not in err, "the host's own handler stops it, not Ray's"
    assert actors_in(db) == [], "SIGTERM retires every actor"
    events = subprocess.run(
        opsdeck_cmd("events", "--db", str(db)), capture_output=True, text=True, timeout=60, env=cli_env
    )
    assert events.stdout.count("AGENT_DEALLOCATED") == 2


@pytest.mark.slow
def test_a_file_the_cluster_cannot_place_is_refused_before_anything_starts(
    ray_address: str, tmp_path: Path, cli_env: dict[str, str]
) -> None:
    big = tmp_path / "big.toml"
    big.write_text(QUICK.read_text().replace("cpu = 0.1", "cpu = 64", 1))
    db = tmp_path / "big.db"
    got = subprocess.run(
        run_cmd(big, db, "--address", ray_address), capture_output=True, text=True, timeout=120, env=cli_env
    )
    assert got.returncode == 2, got.stderr[-2000:]
    assert "pools[0] 'workers': its agents need 64 CPU" in got.stderr and "the largest: 2 CPU" in got.stderr
    assert "Traceback" not in got.stderr
    assert not db.exists() and actors_in(db) == []
    nowhere = subprocess.run(
        run_cmd(QUICK, db, "--address", "127.0.0.1:1"), capture_output=True, text=True, timeout=60, env=cli_env
    )
    assert nowhere.returncode == 2 and "nothing answers at 127.0.0.1:1" in nowhere.stderr and not db.exists()


def test_without_ray_installed_the_ray_runtime_says_how_to_install_it(monkeypatch: pytest.MonkeyPatch) -> None:
    import argparse

    from opsdeck.subcommands.run import runtime_problem

    monkeypatch.setitem(sys.modules, "ray", None)  # what an environment without the extra has
    monkeypatch.delitem(sys.modules, "core.runtimes.ray")
    said = runtime_problem(argparse.Namespace(runtime="ray", address=None))
    assert said is not None and "pip install -e '.[ray]'" in said
    assert runtime_problem(argparse.Namespace(runtime="local", address="auto")) == "--address is for --runtime ray"
