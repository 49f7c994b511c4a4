"""Without cgroups, a task's detached descendants (``setsid``, double fork) are still its own:
the agent host is their subreaper, counts their memory and kills them with the task."""

from __future__ import annotations

import os
from pathlib import Path

import psutil

from .local_harness import PY, drive, header, open_text, task_toml, wf_status, workflow_toml

# The task forks a child that forks again and exits: the grandchild, in a session of
# its own, is orphaned (re-parented) while it sleeps. The task itself ends at once.
DETACH = (
    "import os, sys, time\n"
    "if os.fork() == 0:\n"
    "    os.setsid()\n"
    "    if os.fork() == 0:\n"
    "        {body}\n"
    "    os._exit(0)\n"
    "os.wait()\n"
    "{after}\n"
)


def _gone(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def _task(wf: str, code: str, **extra: float) -> str:
    return workflow_toml(
        wf,
        task_toml("t", [PY, "-c", code], "shell", retries=0, **extra),
        phase="p",
        allocation={"cpu_cores": 1, "memory_gb": 1, "agents": 1},
    )


async def test_a_setsid_grandchild_does_not_outlive_its_task(tmp_path: Path) -> None:
    mark = tmp_path / "grandchild.pid"
    body = f"open({str(mark)!r}, 'w').write(str(os.getpid())); time.sleep(300)"
    code = DETACH.format(body=body, after=f"while not os.path.exists({str(mark)!r}): time.sleep(0.01)")
    engine, runtime, _rec = await open_text(tmp_path / "s.db", header() + _task("detach", code), tmp_path)
    try:
        await drive(engine, lambda: wf_status(engine, "detach") in ("completed", "failed"), timeout=60)
        assert wf_status(engine, "detach") == "completed"
        grandchild = int(mark.read_text())
        assert os.getsid(grandchild) != os.getsid(0) if not _gone(grandchild) else True
        await drive(engine, lambda: _gone(grandchild), timeout=30, what="the detached grandchild to be killed")
    finally:
        await runtime.shutdown()
        await engine.close()


async def test_a_detached_grandchilds_memory_counts_against_the_task(tmp_path: Path) -> None:
    """The parent and the orphaned grandchild hold 55 MB each: only together are they
    over the task's 0.1 GB, so the kill (by resident memory) shows the grandchild counted."""
    mark = tmp_path / "hog.pid"
    body = f"open({str(mark)!r}, 'w').write(str(os.getpid())); x = b'x' * (55 << 20); time.sleep(300)"
    after = "y = b'y' * (55 << 20)\ntime.sleep(600)"
    code = DETACH.format(body=body, after=after)
    engine, runtime, rec = await open_text(tmp_path / "m.db", header() + _task("hog", code, memory_gb=0.1), tmp_path)
    try:
        await drive(engine, lambda: wf_status(engine, "hog") in ("completed", "failed"), timeout=240)
        fails = [e for e in rec.of("TASK_FAILED") if e.data["task"] == "hog/t"]
        assert fails and "memory limit exceeded (rss" in fails[0].data["error"], [e.data for e in fails]
        grandchild = int(mark.read_text())
        await drive(engine, lambda: _gone(grandchild), timeout=30, what="the hog's grandchild to be killed")
    finally:
        await runtime.shutdown()
        await engine.close()
