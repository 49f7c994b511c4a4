"""Shared pieces of the local-runtime tests: workflow files, a driver loop, process checks."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import psutil

from core.engine import Engine
from core.events import Event
from core.runtimes import agent_host
from core.runtimes.local import LocalRuntime, open_local
from core.runtimes.zygote import HOST_NAME
from core.workflow_file import parse_workflow_text

PY = sys.executable


def in_process_host(tmp_path: Path) -> agent_host.Host:
    """An agent host object in this process (no socket served): its runner and its
    command handling, as ``python -m core.runtimes.agent_host`` would build them."""
    secret = tmp_path / "secret"
    secret.write_bytes(os.urandom(32))
    secret.chmod(0o600)
    args = argparse.Namespace(
        agent="a1",
        socket="@unused",
        secret_file=str(secret),
        heartbeat=1.0,
        grace=1.0,
        orphan=60.0,
        memory_mechanism="rlimit_as",
        cpu_mechanism="nice",
        cgroup=None,
        output_dir=None,
    )
    return agent_host.Host(args)


TomlValue = str | int | float | list[str] | dict[str, int | float]


def toml_value(v: TomlValue) -> str:
    """``v`` written as a TOML value (a dict as an inline table)."""
    if isinstance(v, dict):
        return "{ " + ", ".join(f"{k} = {toml_value(x)}" for k, x in v.items()) + " }"
    return json.dumps(v)  # strings, numbers and string arrays are written alike in JSON and TOML


def task_toml(task_id: str, command: str | list[str], specialization: str = "s", **keys: TomlValue) -> str:
    """One ``[[workflows.phases.tasks]]`` table; ``keys`` are its further keys."""
    lines = [f"id = {toml_value(task_id)}", f"command = {toml_value(command)}"]
    lines += [f"specialization = {toml_value(specialization)}"]
    lines += [f"{k} = {toml_value(v)}" for k, v in keys.items()]
    return "    [[workflows.phases.tasks]]\n" + "".join(f"    {line}\n" for line in lines)


def workflow_toml(wf_id: str, *tasks: str, phase: str = "x", **keys: TomlValue) -> str:
    """One ``[[workflows]]`` table (``keys`` its further keys) with one phase of ``tasks``
    (each from :func:`task_toml`)."""
    return phased_workflow_toml(wf_id, {phase: tasks}, **keys)


def phased_workflow_toml(wf_id: str, phases: dict[str, Sequence[str]], **keys: TomlValue) -> str:
    """One ``[[workflows]]`` table (``keys`` its further keys) with its ``phases`` in order,
    each name's tasks (each from :func:`task_toml`)."""
    head = "".join(f"{k} = {toml_value(v)}\n" for k, v in keys.items())
    body = "".join(f"  [[workflows.phases]]\n  name = {toml_value(name)}\n" + "".join(t) for name, t in phases.items())
    return f"\n[[workflows]]\nid = {toml_value(wf_id)}\n{head}{body}"


def header(heartbeat: float = 0.5, grace: float = 1.0, pools: str = "", sample: float | None = None) -> str:
    """A file's runtime (samples at ``sample``, by default at the heartbeat) and its pools
    (by default "workers": 2 agents of "shell")."""
    return f"""
[runtime]
heartbeat_s = {heartbeat}
sample_s = {heartbeat if sample is None else sample}
stop_grace_s = {grace}
{
        pools
        or '''
[[pools]]
name = "workers"
specializations = ["shell"]
size = 2
'''
    }
"""


class Recorder:
    """Keeps every event the engine emits, for assertions."""

    def __init__(self) -> None:
        self.events: list[Event] = []

    def __call__(self, ev: Event) -> None:
        self.events.append(ev)

    def of(self, type_: str) -> list[Event]:
        return [e for e in self.events if e.type == type_]


async def open_text(db: Path, text: str, base: Path) -> tuple[Engine, LocalRuntime, Recorder]:
    wf = parse_workflow_text(text, "test.toml")
    rec = Recorder()
    engine, runtime = await open_local(db, wf, wf.specs(base), subscriber=rec)
    return engine, runtime, rec


async def drive(
    engine: Engine,
    until: Callable[[], Any],
    timeout: float = 20.0,
    tick: float = 0.05,
    what: str | Callable[[], str] = "",
) -> Any:
    """Run the loop (flushing like ``opsdeck run``) until ``until()`` is truthy; then flush
    once more, so subscribers (who get events once committed) have seen what led to it."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got = until()
        if got:
            await engine.flush()
            return got
        await asyncio.sleep(tick)
        await engine.flush()
    said = what() if callable(what) else what
    raise AssertionError(f"condition not met within {timeout}s: {said or getattr(until, '__name__', until)}")


def wf_status(engine: Engine, wf_id: str) -> str:
    return engine.state.status_of(wf_id).value


def group_members(pgid: int) -> list[psutil.Process]:
    """Live (not zombie) members of a process group."""
    out = []
    for p in psutil.process_iter(["pid"]):
        try:
            if os.getpgid(p.pid) == pgid and p.status() != psutil.STATUS_ZOMBIE:
                out.append(p)
        except (ProcessLookupError, psutil.Error, OSError):
            pass
    return out


def agent_hosts_under(root: Path) -> list[psutil.Process]:
    """Live agent-host processes whose command line names a path under ``root`` (a
    host's argv names its run directory, ``<db>.agents/``, beside the database; a host
    forked by the launcher has its own process name, and a command line set as one string,
    ``opsdeck-host --agent ID ...``)."""
    prefix = str(root.resolve())
    out = []
    for p in psutil.process_iter(["cmdline", "status", "name"]):
        try:
            argv = p.info["cmdline"] or []
            forked = p.info["name"] == HOST_NAME
            if p.info["status"] == psutil.STATUS_ZOMBIE or not (forked or "core.runtimes.agent_host" in argv):
                continue
            if prefix in " ".join(argv):
                out.append(p)
        except psutil.Error:
            pass
    return out


def agent_hosts(db: Path) -> list[psutil.Process]:
    """Live agent-host processes of the run on ``db`` (its run directory, ``<db>.agents/``)."""
    return agent_hosts_under(Path(f"{db.resolve()}.agents"))


def kill_agent_hosts_under(root: Path) -> list[str]:
    """SIGKILL the agent hosts left under ``root`` and everything they started (their
    tasks run in process groups of their own, so a kill of the console's group misses
    them); returns a description of each host found."""
    found = []
    for host in agent_hosts_under(root):
        try:
            procs = [*host.children(recursive=True), host]
            found.append(f"pid {host.pid} ({host.name()}, {len(procs) - 1} descendant(s))")
        except psutil.Error:
            continue
        for p in procs:
            try:
                p.kill()
            except psutil.Error:
                pass
        psutil.wait_procs(procs, timeout=10)
    return found


def alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def chain_workflow(tmp: Path, log: Path, steps: int, sleep_s: float = 0.4, cpu: float | None = None) -> Path:
    """``chain.toml``: ``steps`` one-task phases in order on 2 agents; each task appends
    ``s<i> <agent>`` to ``log`` and sleeps ``sleep_s`` (what a restart must not repeat)."""
    stamp = (
        "import sys,os,time\n"
        "open(sys.argv[1],'a').write(sys.argv[2]+' '+os.environ['OPSDECK_AGENT']+'\\n')\n"
        f"time.sleep({sleep_s})\n"
    )
    keys: dict[str, TomlValue] = {} if cpu is None else {"cpu": cpu}
    steps_of = {
        f"step{i}": [task_toml(f"s{i}", [PY, "-c", stamp, str(log), f"s{i}"], "shell", **keys)] for i in range(steps)
    }
    f = tmp / "chain.toml"
    f.write_text(
        header() + phased_workflow_toml("chain", steps_of, allocation={"cpu_cores": 2, "memory_gb": 2, "agents": 2})
    )
    return f
