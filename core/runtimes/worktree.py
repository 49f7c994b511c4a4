"""One git worktree per task: its own checkout on its own branch, merged or discarded.

A workflow with ``workspace = "worktree"`` and ``repo = PATH`` runs each task in
``<run dir>/worktrees/<task>`` on the branch ``opsdeck/<task>``, made from the
repository's HEAD when the task first starts. A retry or a replacement agent gets
the same branch back (the work so far travels with it). ``merge`` commits what the
task left uncommitted and merges the branch into the repository's checked-out
branch (a conflict is aborted and changes nothing); ``discard`` removes the
worktree and the branch. Every call is plain ``git``; its error is the message.
"""

from __future__ import annotations

import re
import subprocess
from dataclasses import dataclass
from pathlib import Path

GIT_TIMEOUT_S = 60.0
DIFF_MAX = 256 * 1024
"""Characters of a diff shown; a longer one is cut with a note."""
BRANCH_PREFIX = "opsdeck/"
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


class WorktreeError(Exception):
    """A git operation on a task's worktree failed; the message is git's."""


@dataclass(frozen=True)
class Worktree:
    """Where a task's checkout is and what it started from."""

    repo: Path
    path: Path
    branch: str
    base: str
    """The commit the branch was made from: the diff is against it."""


def git(cwd: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    try:
        done = subprocess.run(
            ["git", "-C", str(cwd), *args],
            capture_output=True,
            text=True,
            timeout=GIT_TIMEOUT_S,
            env={"GIT_TERMINAL_PROMPT": "0", "PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": str(Path.home())},
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise WorktreeError(f"git {args[0]} in {cwd}: {exc}") from exc
    if check and done.returncode != 0:
        raise WorktreeError(f"git {' '.join(args[:2])} in {cwd}: {(done.stderr or done.stdout).strip()[:500]}")
    return done


def slug(task: str) -> str:
    """A task id as a branch and directory name (``workflow_001/build`` -> ``workflow_001-build``)."""
    return _UNSAFE.sub("-", task).strip("-.")[:100] or "task"


def branch_for(task: str) -> str:
    return BRANCH_PREFIX + slug(task)


def open_worktree(repo: str | Path, root: Path, task: str, create: bool = True) -> Worktree:
    """The task's worktree, made on first use; the same one (same branch) afterwards.
    Without ``create``, a task whose branch is gone (merged, discarded) is an error."""
    repo_p = Path(repo).expanduser().resolve()
    top = Path(git(repo_p, "rev-parse", "--show-toplevel").stdout.strip())
    path = root / slug(task)
    branch = branch_for(task)
    base_ref = f"refs/opsdeck-base/{slug(task)}"
    if path.is_dir() and (path / ".git").exists():
        base = git(top, "rev-parse", base_ref, check=False).stdout.strip() or _head(top)
        return Worktree(top, path, branch, base)
    root.mkdir(mode=0o700, parents=True, exist_ok=True)
    git(top, "worktree", "prune")
    has_branch = git(top, "rev-parse", "--verify", "--quiet", f"refs/heads/{branch}", check=False).returncode == 0
    if not has_branch and not create:
        raise WorktreeError(f"{task} has no worktree and no branch {branch} (merged or discarded)")
    if has_branch:
        git(top, "worktree", "add", str(path), branch)
        base = (
            git(top, "rev-parse", base_ref, check=False).stdout.strip()
            or git(top, "merge-base", "HEAD", branch).stdout.strip()
        )
    else:
        base = _head(top)
        git(top, "worktree", "add", "-b", branch, str(path), base)
        git(top, "update-ref", base_ref, base)
    return Worktree(top, path, branch, base)


def _head(top: Path) -> str:
    return git(top, "rev-parse", "HEAD").stdout.strip()


def _stage(wt: Worktree) -> None:
    """Mark the task's new files as intended so the diff shows them (nothing is committed)."""
    git(wt.path, "add", "--intent-to-add", "--all")


def diff_stat(wt: Worktree) -> str:
    """``git diff --stat`` of the task's work (committed and not) against its base."""
    _stage(wt)
    return git(wt.path, "diff", "--stat", wt.base).stdout.rstrip()


def diff(wt: Worktree) -> str:
    """The task's whole diff against its base, cut at :data:`DIFF_MAX` characters."""
    _stage(wt)
    text = git(wt.path, "diff", wt.base).stdout
    if len(text) > DIFF_MAX:
        return text[:DIFF_MAX] + f"\n[diff of {len(text):,} characters cut at {DIFF_MAX:,}]\n"
    return text


def commit_pending(wt: Worktree, message: str) -> bool:
    """Commit what the task left in its checkout; whether there was anything."""
    git(wt.path, "add", "--all")
    if git(wt.path, "diff", "--cached", "--quiet", check=False).returncode == 0:
        return False
    git(wt.path, "-c", "user.name=opsdeck", "-c", "user.email=opsdeck@localhost", "commit", "-q", "-m", message)
    return True


def merge(wt: Worktree, message: str) -> str:
    """Merge the task's branch into the repository's checked-out branch; the new HEAD.

    A conflict aborts the merge: the repository is left as it was and the error says
    which files conflicted. The worktree and branch are removed after a merge."""
    commit_pending(wt, message)
    if git(wt.repo, "status", "--porcelain", "--untracked-files=no").stdout.strip():
        raise WorktreeError(f"{wt.repo} has uncommitted changes: commit or stash them before merging {wt.branch}")
    done = git(
        wt.repo,
        "-c",
        "user.name=opsdeck",
        "-c",
        "user.email=opsdeck@localhost",
        "merge",
        "--no-ff",
        "-m",
        message,
        wt.branch,
        check=False,
    )
    if done.returncode != 0:
        conflicts = git(wt.repo, "diff", "--name-only", "--diff-filter=U", check=False).stdout.split()
        git(wt.repo, "merge", "--abort", check=False)
        what = f"conflicts in {', '.join(conflicts[:10])}" if conflicts else (done.stderr or done.stdout).strip()[:300]
        raise WorktreeError(f"merging {wt.branch} into {wt.repo}: {what}; nothing was merged")
    head = _head(wt.repo)
    remove(wt)
    return head


def remove(wt: Worktree) -> None:
    """Remove the worktree, its branch and its base mark."""
    git(wt.repo, "worktree", "remove", "--force", str(wt.path), check=False)
    git(wt.repo, "branch", "-D", wt.branch, check=False)
    git(wt.repo, "update-ref", "-d", f"refs/opsdeck-base/{slug(wt.branch[len(BRANCH_PREFIX) :])}", check=False)
    git(wt.repo, "worktree", "prune")


def exists(wt: Worktree) -> bool:
    return wt.path.is_dir()


def prune(repo: str | Path, root: Path, keep: set[str]) -> list[str]:
    """Remove the worktrees under ``root`` whose task is not in ``keep``; the tasks removed.

    Their branches stay (a finished task's work is not thrown away by cleanup): only the
    checkouts go. ``discard`` is what deletes a branch."""
    repo_p = Path(repo).expanduser().resolve()
    removed: list[str] = []
    if not root.is_dir():
        return removed
    keep_slugs = {slug(t) for t in keep}
    for p in sorted(root.iterdir()):
        if p.is_dir() and not p.is_symlink() and p.name not in keep_slugs:
            git(repo_p, "worktree", "remove", "--force", str(p), check=False)
            removed.append(p.name)
    git(repo_p, "worktree", "prune", check=False)
    return removed
