"""One git worktree per task: made, diffed, merged or discarded, pruned (real git)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from core.runtimes import worktree as W


def _repo(tmp_path: Path) -> Path:
    repo = tmp_path / "repo"
    repo.mkdir()
    for args in (["init", "-q", "-b", "main"], ["config", "user.name", "t"], ["config", "user.email", "t@t"]):
        subprocess.run(["git", "-C", str(repo), *args], check=True)
    (repo / "a.txt").write_text("one\n")
    subprocess.run(["git", "-C", str(repo), "add", "."], check=True)
    subprocess.run(["git", "-C", str(repo), "commit", "-q", "-m", "init"], check=True)
    return repo


def _log(repo: Path) -> str:
    return subprocess.run(["git", "-C", str(repo), "log", "--oneline"], capture_output=True, text=True).stdout


def test_a_task_gets_its_own_branch_and_its_diff_shows_new_and_changed_files(tmp_path: Path) -> None:
    repo = _repo(tmp_path)
    wt = W.open_worktree(repo, tmp_path / "wts", "wf_1/build")
    assert wt.branch == "opsdeck/wf_1-build" and (wt.path / "a.txt").read_text() == "one\n"
    (wt.path / "a.txt").write_text("two\n")
    (wt.path / "new.txt").write_text("fresh\n")
    stat = W.diff_stat(wt)
    assert "a.txt" in stat and "new.txt" in stat
    assert "+two" in W.diff(wt) and "+fresh" in W.diff(wt)
    assert (repo / "a.txt").read_text() == "one\n"  # the repository's checkout is untouched
    again = W.open_worktree(repo, tmp_path / "wts", "wf_1/build")
    assert again.path == wt.path and again.base == wt.base


def test_merge_brings_the_work_into_the_repository_and_removes_the_worktree(tmp_path: Path) -> None:
    repo = _repo(tmp_path)
    wt = W.open_worktree(repo, tmp_path / "wts", "t1")
    (wt.path / "a.txt").write_text("merged\n")
    W.merge(wt, "opsdeck: merge t1")
    assert (repo / "a.txt").read_text() == "merged\n"
    assert not wt.path.exists()
    assert "opsdeck/t1" not in subprocess.run(["git", "-C", str(repo), "branch"], capture_output=True, text=True).stdout


def test_a_conflicting_merge_changes_nothing(tmp_path: Path) -> None:
    repo = _repo(tmp_path)
    wt = W.open_worktree(repo, tmp_path / "wts", "t1")
    (wt.path / "a.txt").write_text("theirs\n")
    (repo / "a.txt").write_text("ours\n")
    subprocess.run(["git", "-C", str(repo), "commit", "-qam", "ours"], check=True)
    before = _log(repo)
    with pytest.raises(W.WorktreeError, match=r"conflicts in a\.txt"):
        W.merge(wt, "opsdeck: merge t1")
    assert _log(repo) == before and (repo / "a.txt").read_text() == "ours\n"
    assert wt.path.exists()  # the task's work is still there to look at


def test_discard_removes_checkout_and_branch_and_prune_keeps_live_tasks(tmp_path: Path) -> None:
    repo = _repo(tmp_path)
    root = tmp_path / "wts"
    a, b = W.open_worktree(repo, root, "a"), W.open_worktree(repo, root, "b")
    assert W.prune(repo, root, keep={"a"}) == ["b"]
    assert a.path.exists() and not b.path.exists()
    W.remove(a)
    assert not a.path.exists()
    assert "opsdeck/a" not in subprocess.run(["git", "-C", str(repo), "branch"], capture_output=True, text=True).stdout


def test_a_replacement_gets_the_same_branch_with_the_work_so_far(tmp_path: Path) -> None:
    repo = _repo(tmp_path)
    root = tmp_path / "wts"
    wt = W.open_worktree(repo, root, "t")
    (wt.path / "half.txt").write_text("half done\n")
    W.commit_pending(wt, "wip")
    W.prune(repo, root, keep=set())  # the first agent's checkout is gone, its branch stays
    again = W.open_worktree(repo, root, "t")
    assert (again.path / "half.txt").read_text() == "half done\n" and again.base == wt.base


def test_not_a_repository_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(W.WorktreeError, match="rev-parse"):
        W.open_worktree(tmp_path, tmp_path / "wts", "t")
