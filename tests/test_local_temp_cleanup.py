"""The temp cleanup (``/coordination-hub cleanup``'s temp part) removes the TMPDIR of
task runs that are over, never one whose process still lives: a run being stopped is
no longer running in the log while its process has its stop grace period to end in."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest

from core.models import TaskStatus
from tests.local_harness import PY, alive, drive, header, open_text, task_toml, wf_status, workflow_toml

pytestmark = pytest.mark.skipif(not hasattr(os, "killpg"), reason="POSIX process groups")

STUBBORN = (
    "import os, signal, time\n"
    "signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
    "open(os.path.join(os.environ['TMPDIR'], 'work'), 'w').write('x')\n"
    "time.sleep(120)\n"
)
"""A task that ignores SIGTERM (it lives through its stop grace) after a file in its TMPDIR."""


def _written(path: Path) -> bool:
    """The task's file holds its text: it exists from its open, before its write."""
    return path.exists() and path.read_text() == "x"


async def test_the_tmpdir_of_a_run_in_its_stop_grace_is_kept_until_its_process_ends(tmp_path: Path) -> None:
    text = header(grace=120) + workflow_toml(
        "w", task_toml("t", [PY, "-c", STUBBORN], "shell"), allocation={"cpu_cores": 1, "memory_gb": 1, "agents": 1}
    )
    engine, runtime, _ = await open_text(tmp_path / "c.db", text, tmp_path)
    pgid = None
    try:
        tmp = runtime.temp_dir("w/t", 1)
        await drive(engine, lambda: _written(tmp / "work"), what="the task to write into its TMPDIR")
        host = next(iter(runtime.fleet.hosts.values()))
        await drive(engine, lambda: host.task_pgid, what="the task's start reported")
        pgid = host.task_pgid
        engine.cancel_workflow("w")
        await drive(engine, lambda: wf_status(engine, "w") == "cancelled", what="the workflow cancelled")
        assert "w/t" not in engine.state.tasks or engine.state.tasks["w/t"].status != TaskStatus.RUNNING
        assert pgid is not None and alive(pgid), "the run is in its stop grace: SIGTERM is ignored"
        got = runtime.cleanup_temp()
        assert (tmp / "work").read_text() == "x", "a live run's TMPDIR is not removed"
        assert got["dirs_removed"] == 0 and "w__t-1" in got["kept_running"], got
        os.killpg(pgid, signal.SIGKILL)
        await drive(engine, lambda: not alive(pgid) and host.task_pgid is None, what="the run's end reported")
        got = runtime.cleanup_temp()
        assert not tmp.exists() and got["dirs_removed"] == 1 and got["files_removed"] == 1, got
    finally:
        if pgid is not None and alive(pgid):
            os.killpg(pgid, signal.SIGKILL)
        await runtime.shutdown()
        await engine.close()
