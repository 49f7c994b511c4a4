"""One git worktree per task on the local runtime: each task works on its own branch,
its diff is shown, a finished task's work is merged (or discarded), and cleanup
removes finished tasks' checkouts while keeping their branches. Real git, real processes."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from core.commands import run_command
from core.models import TaskStatus
from core.runtimes.local import open_local
from core.workflow_file import parse_workflow_text
from tests.local_harness import PY, Recorder, drive, header, task_toml, wf_status, workflow_toml

pytestmark = pytest.mark.slow


def _git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True, check=True).stdout


def _repo(tmp_path: Path) -> Path:
    repo = tmp_path / "repo"
    repo.mkdir()
    _git(repo, "init", "-q", "-b", "main")
    _git(repo, "config", "user.name", "t")
    _git(repo, "config", "user.email", "t@t")
    (repo / "a.txt").write_text("one\n")
    _git(repo, "add", ".")
    _git(repo, "commit", "-q", "-m", "init")
    return repo


def _file(repo: Path, feature: str | None = None) -> str:
    """Two tasks, each writing its branch's name into a file of its worktree (``feature``:
    the first task's code instead)."""
    write = "import os, sys; open(sys.argv[1], 'w').write(os.environ['OPSDECK_BRANCH'] + '\\n')"
    return header() + workflow_toml(
        "w",
        task_toml("feature", [PY, "-c", feature or write.replace("sys.argv[1]", "'feature.txt'")], "shell"),
        task_toml("other", [PY, "-c", write.replace("sys.argv[1]", "'other.txt'")], "shell"),
        phase="p",
        allocation={"cpu_cores": 2, "memory_gb": 2, "agents": 2},
        workspace="worktree",
        repo=str(repo),
    )


async def test_each_task_works_in_its_own_worktree_merged_or_pruned(tmp_path: Path) -> None:
    repo = _repo(tmp_path)
    wf = parse_workflow_text(_file(repo), "t.toml")
    rec = Recorder()
    engine, runtime = await open_local(tmp_path / "r.db", wf, wf.specs(tmp_path), subscriber=rec)
    try:
        await drive(engine, lambda: wf_status(engine, "w") == "completed", timeout=90)
        opened = {e.data["task"]: e.data for e in rec.of("TASK_WORKTREE") if e.data["outcome"] == "opened"}
        feat, other = opened["w/feature"], opened["w/other"]
        assert feat["branch"] == "opsdeck/w-feature" and other["branch"] == "opsdeck/w-other"
        assert (Path(feat["path"]) / "feature.txt").read_text() == "opsdeck/w-feature\n"
        assert not (Path(feat["path"]) / "other.txt").exists()  # each its own checkout
        assert not (repo / "feature.txt").exists()  # the repository's checkout untouched so far

        diff = await run_command(engine, "/coordination-hub diff w/feature")
        assert diff["status"] == "success" and "feature.txt" in diff["result"]["stat"]

        merged = await run_command(engine, "/coordination-hub merge w/feature")
        assert merged["status"] == "success", merged
        assert (repo / "feature.txt").read_text() == "opsdeck/w-feature\n"
        assert _git(repo, "rev-parse", "HEAD").strip() == merged["result"]["commit"]
        assert not Path(feat["path"]).exists() and "opsdeck/w-feature" not in _git(repo, "branch")
        again = await run_command(engine, "/coordination-hub merge w/feature")
        assert again["status"] == "error" and again["error"]["code"] == "INVALID_STATE"  # nothing left to merge

        cleaned = await run_command(
            engine, '/coordination-hub emergency-cleanup \'{"actions": ["temp_file_cleanup"]}\''
        )
        assert cleaned["status"] == "success", cleaned
        assert not Path(other["path"]).exists()
        assert "opsdeck/w-other" in _git(repo, "branch")  # the work stays on its branch
        assert not (repo / "other.txt").exists()
        await engine.flush()
        outcomes = [e.data["outcome"] for e in rec.of("TASK_WORKTREE")]
        assert outcomes.count("pruned") == 1 and outcomes.count("merged") == 1
    finally:
        await runtime.shutdown()
        await engine.close()


async def test_a_running_tasks_worktree_cannot_be_merged(tmp_path: Path) -> None:
    repo = _repo(tmp_path)
    text = _file(repo, "import time; open('feature.txt', 'w').write('x'); print('go', flush=True); time.sleep(60)")
    wf = parse_workflow_text(text, "t.toml")
    engine, runtime = await open_local(tmp_path / "r.db", wf, wf.specs(tmp_path))
    try:
        t = engine.state.tasks["w/feature"]
        await drive(engine, lambda: t.status is TaskStatus.RUNNING and t.context.last_output, timeout=60)
        head = _git(repo, "rev-parse", "HEAD")
        res = await run_command(engine, "/coordination-hub merge w/feature")
        assert res["status"] == "error" and res["error"]["code"] == "INVALID_STATE"
        assert _git(repo, "rev-parse", "HEAD") == head and t.worktree is not None
    finally:
        await runtime.shutdown()
        await engine.close()
