"""Each task run gets a private TMPDIR of its own, empty at its start: the previous
run's is renamed to it only when nothing was left in it, its task did not change its
mode or type and no process of it is left; otherwise it stays, with what it holds,
for the cleanup."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from core.runtimes.task_run import Run, RunDirs
from core.runtimes.task_runner import RunnerConfig, TaskRunner

from .conftest import until


def run(tmp_root: Path, n: int) -> Run:
    return Run(
        {
            "task": f"w/t{n}",
            "attempt": 1,
            "env": {"TMPDIR": str(tmp_root / f"t{n}"), "OPSDECK_RUN_DIR": str(tmp_root.parent / "shared")},
        }
    )


@pytest.fixture
def root(tmp_path: Path) -> Path:
    """The agent's temp root, private as the host makes it; the runs' shared dir is beside it."""
    r = tmp_path / "tmp"
    r.mkdir(mode=0o700)
    return r


def made(dirs: RunDirs, r: Run) -> Path:
    assert dirs.make(r) is None
    p = Path(r.msg["env"]["TMPDIR"])
    st = os.lstat(p)
    assert p.is_dir() and not p.is_symlink() and oct(st.st_mode & 0o777) == "0o700" and st.st_uid == os.getuid()
    assert list(p.iterdir()) == []
    return p


@pytest.mark.parametrize("alone", [True, False])
def test_an_empty_tmpdir_is_renamed_to_the_next_runs_when_no_process_may_be_left(
    tmp_path: Path, root: Path, alone: bool
) -> None:
    dirs = RunDirs(lambda: alone)
    first = run(root, 1)
    p1 = made(dirs, first)
    inode = p1.stat().st_ino
    dirs.done(first)
    p2 = made(dirs, run(root, 2))
    assert p1.exists() != alone and (p2.stat().st_ino == inode) == alone
    assert (tmp_path / "shared").is_dir()


def test_a_tmpdir_left_with_files_or_opened_up_or_replaced_is_never_reused(root: Path) -> None:
    dirs = RunDirs(lambda: True)
    r1 = run(root, 1)
    p1 = made(dirs, r1)
    (p1 / "left.bin").write_bytes(b"x")
    dirs.done(r1)
    p2 = made(dirs, run(root, 2))
    assert (p1 / "left.bin").read_bytes() == b"x", "the leftover stays for the cleanup"
    r3 = run(root, 3)
    p3 = made(dirs, r3)
    p3.chmod(0o755)  # its task opened it up
    dirs.done(r3)
    p4 = made(dirs, run(root, 4))
    assert p3.is_dir() and p4.stat().st_ino != p3.stat().st_ino
    r5 = run(root, 5)
    p5 = made(dirs, r5)
    p5.rmdir()
    p5.symlink_to(p2)  # its task put a link in its place
    dirs.done(r5)
    p6 = made(dirs, run(root, 6))
    assert p5.is_symlink() and p6.stat().st_ino != p2.stat().st_ino


def test_a_tmpdir_swapped_for_a_link_while_it_is_checked_is_not_the_next_runs(
    tmp_path: Path, root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    outside = tmp_path / "outside"
    outside.mkdir(mode=0o700)
    dirs = RunDirs(lambda: True)
    r1 = run(root, 1)
    p1 = made(dirs, r1)
    dirs.done(r1)
    real = os.scandir

    def swapped(arg: Any) -> Any:
        """Between the check of the spare TMPDIR and its rename, a link takes its name."""
        monkeypatch.setattr(os, "scandir", real)
        os.rename(p1, tmp_path / "moved")
        p1.symlink_to(outside)
        return real(arg)

    monkeypatch.setattr(os, "scandir", swapped)
    p2 = made(dirs, run(root, 2))
    assert not p2.is_symlink() and p2.stat().st_ino != outside.stat().st_ino
    assert p1.is_symlink(), "the link is put back where it was, for the cleanup"


async def test_a_process_a_run_left_in_its_tmpdir_never_writes_into_the_next_runs(tmp_path: Path, root: Path) -> None:
    """Not a subreaper (the Ray actor's runner): a task's detached process is out of
    the host's sight and outlives the run; its working directory, the run's TMPDIR,
    must not become the next run's."""
    go = tmp_path / "go"
    sent: list[dict[str, Any]] = []
    runner = TaskRunner(RunnerConfig(agent="a1", make_dirs=True), sent.append)

    def start(n: int, command: str) -> None:
        env = {"TMPDIR": str(root / f"t{n}")}
        assert (
            runner.handle(
                {"op": "start", "task": f"w/t{n}", "attempt": 1, "command": command, "shell": True, "env": env}
            )
            is None
        )

    def ended(n: int) -> bool:
        return any(m.get("task") == f"w/t{n}" and m["t"] not in ("started", "heartbeat") for m in sent)

    ready = tmp_path / "ready"  # the first run ends once its process has left its session
    left = f"touch {ready}; while [ ! -e {go} ]; do sleep 0.02; done; echo leak > left"
    wait = f"while [ ! -e {ready} ]; do sleep 0.01; done"
    start(1, f"cd \"$TMPDIR\" && (setsid sh -c '{left}' </dev/null >/dev/null 2>&1 &) && {wait}")
    await until(lambda: ended(1), lambda: f"the first run's end: {sent}")
    start(2, "true")
    await until(lambda: ended(2), lambda: f"the second run's end: {sent}")
    go.touch()
    await until(lambda: (root / "t1" / "left").exists() or (root / "t2" / "left").exists(), "the left process's write")
    assert not (root / "t2" / "left").exists(), "the earlier run's process wrote into the next run's TMPDIR"


def test_a_tmpdir_its_task_put_attributes_on_is_never_reused(root: Path) -> None:
    """A value (``user.`` attribute) or an ACL on the directory would be the next run's."""
    dirs = RunDirs(lambda: True)
    r1 = run(root, 1)
    p1 = made(dirs, r1)
    try:
        os.setxattr(p1, "user.secret", b"the first run's")
    except OSError as exc:
        pytest.skip(f"no user attributes on this file system: {exc}")
    dirs.done(r1)
    p2 = made(dirs, run(root, 2))
    assert os.getxattr(p1, "user.secret") == b"the first run's", "it stays for the cleanup"
    assert os.listxattr(p2) == [n for n in os.listxattr(p2) if n.startswith("security.")]


def no_listing(monkeypatch: pytest.MonkeyPatch) -> None:
    """From now on a TMPDIR listed fails the test."""

    def listed(*_: Any, **__: Any) -> Any:
        raise AssertionError("the TMPDIR was listed")

    monkeypatch.setattr(os, "scandir", listed)


def test_a_tmpdir_found_fit_and_untouched_since_is_renamed_unlisted(
    root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Listed once (it was made, not found empty), then stamped: a run that made no
    entry in it hands it on without a listing, the same directory each time."""
    dirs = RunDirs(lambda: True)
    r1 = run(root, 1)
    inode = made(dirs, r1).stat().st_ino
    dirs.done(r1)
    r2 = run(root, 2)
    made(dirs, r2)
    dirs.done(r2)
    no_listing(monkeypatch)
    for n in (3, 4, 5):
        r = run(root, n)
        assert dirs.make(r) is None
        p = Path(r.msg["env"]["TMPDIR"])
        assert p.stat().st_ino == inode and oct(p.stat().st_mode & 0o777) == "0o700"
        dirs.done(r)
    assert sorted(q.name for q in root.iterdir()) == ["t5"]


def _file(p: Path) -> None:
    (p / "f").write_bytes(b"x")


def _subdir(p: Path) -> None:
    (p / "d").mkdir()


def _link(p: Path) -> None:
    (p / "l").symlink_to("/etc")


def _hard_link(p: Path) -> None:
    other = p.parent.parent / "elsewhere"
    other.write_bytes(b"x")
    os.link(other, p / "h")


def _moved_in(p: Path) -> None:
    other = p.parent.parent / "moved"
    other.write_bytes(b"x")
    os.rename(other, p / "m")


def _fifo(p: Path) -> None:
    os.mkfifo(p / "q")


def _swapped_for_a_link(p: Path) -> None:
    away = p.parent.parent / "away"
    os.rename(p, away)
    p.symlink_to(away)


def _opened_up(p: Path) -> None:
    p.chmod(0o755)


_COARSE_REALTIME = 5
"""Linux's CLOCK_REALTIME_COARSE: the clock a file's times are taken from (a tick apart)."""


def _time_put_back(made: Callable[[Path], None]) -> Callable[[Path], None]:
    """``made`` in the TMPDIR, then the TMPDIR's times put back as they were (what a
    tool keeping a directory's times does): its modification time says nothing was made."""

    def change(p: Path) -> None:
        st = os.lstat(p)
        while time.clock_gettime_ns(_COARSE_REALTIME) <= st.st_ctime_ns:
            pass  # a change within the tick of the last one can carry its very time
        made(p)
        os.utime(p, ns=(st.st_atime_ns, st.st_mtime_ns))
        assert os.lstat(p).st_mtime_ns == st.st_mtime_ns

    change.__name__ = f"{made.__name__}_time_put_back"
    return change


def _attribute(p: Path) -> None:
    try:
        os.setxattr(p, "user.secret", b"the run's")
    except OSError as exc:
        pytest.skip(f"no user attributes on this file system: {exc}")


@pytest.mark.parametrize(
    "change",
    [
        _file,
        _subdir,
        _link,
        _hard_link,
        _moved_in,
        _fifo,
        _swapped_for_a_link,
        _opened_up,
        _attribute,
        _time_put_back(_file),
        _time_put_back(_subdir),
    ],
    ids=lambda f: f.__name__.strip("_"),
)
def test_a_stamped_tmpdir_its_run_changed_is_never_the_next_runs(root: Path, change: Callable[[Path], None]) -> None:
    dirs = RunDirs(lambda: True)
    r1 = run(root, 1)
    made(dirs, r1)
    dirs.done(r1)
    r2 = run(root, 2)
    p2 = made(dirs, r2)  # listed, found empty and stamped
    change(p2)
    dirs.done(r2)
    p3 = made(dirs, run(root, 3))
    assert p2.is_dir() and p3.stat().st_ino != p2.stat().st_ino, "it stays, changed, for the cleanup"


def test_a_stamped_tmpdir_whose_entries_changed_and_went_is_listed_before_it_serves(
    root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A run that made a file and removed it left it empty: it serves the next run,
    once a listing found it so; opened up and closed again (its change time moved), it is
    listed again, then serves unlisted."""
    dirs = RunDirs(lambda: True)
    r1 = run(root, 1)
    made(dirs, r1)
    dirs.done(r1)
    r2 = run(root, 2)
    p2 = made(dirs, r2)
    inode = p2.stat().st_ino
    (p2 / "f").write_bytes(b"x")
    (p2 / "f").unlink()
    dirs.done(r2)
    listings = []
    real = os.scandir

    def counted(arg: Any) -> Any:
        listings.append(arg)
        return real(arg)

    monkeypatch.setattr(os, "scandir", counted)
    r3 = run(root, 3)
    p3 = made(dirs, r3)
    assert p3.stat().st_ino == inode and len(listings) == 1
    p3.chmod(0o755)
    p3.chmod(0o700)
    dirs.done(r3)
    r4 = run(root, 4)
    assert made(dirs, r4).stat().st_ino == inode and len(listings) == 2
    dirs.done(r4)
    assert made(dirs, run(root, 5)).stat().st_ino == inode and len(listings) == 2, "stamped again: no listing"


def test_a_tmpdir_that_could_not_be_stamped_is_listed_each_time(root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def refused(*_: Any, **__: Any) -> None:
        raise PermissionError("no times set here")

    monkeypatch.setattr(os, "utime", refused)
    dirs = RunDirs(lambda: True)
    listings = []
    real = os.scandir

    def counted(arg: Any) -> Any:
        listings.append(arg)
        return real(arg)

    monkeypatch.setattr(os, "scandir", counted)
    r1 = run(root, 1)
    inode = made(dirs, r1).stat().st_ino
    dirs.done(r1)
    r2 = run(root, 2)
    p2 = made(dirs, r2)
    dirs.done(r2)
    r3 = run(root, 3)
    assert made(dirs, r3).stat().st_ino == inode and len(listings) == 2
    (Path(r3.msg["env"]["TMPDIR"]) / "f").write_bytes(b"x")
    dirs.done(r3)
    assert made(dirs, run(root, 4)).stat().st_ino != inode and not p2.exists()


async def test_a_killed_runs_tmpdir_stays_for_the_cleanup_and_the_next_run_gets_an_empty_private_one(
    tmp_path: Path, root: Path
) -> None:
    """Through the runner: two runs that leave their TMPDIR untouched (from the second
    on it is stamped), then one that writes into it and is killed in its stop grace."""
    sent: list[dict[str, Any]] = []
    runner = TaskRunner(RunnerConfig(agent="a1", make_dirs=True, grace_s=0.2), sent.append)
    runner.tree.subreaper = True  # as the host is (alone() then asks for no child at all)

    def start(n: int, command: str) -> Path:
        tmp = root / f"t{n}"
        msg = {"op": "start", "task": f"w/t{n}", "attempt": 1, "command": command, "shell": True}
        assert runner.handle({**msg, "env": {"TMPDIR": str(tmp)}}) is None
        return tmp

    def ended(n: int) -> bool:
        return any(m.get("task") == f"w/t{n}" and m["t"] not in ("started", "heartbeat") for m in sent)

    async def ran(n: int, command: str) -> Path:
        tmp = start(n, command)
        await until(lambda: ended(n), lambda: f"run {n}'s end: {sent}")
        return tmp

    await ran(1, "true")
    await ran(2, "true")
    t3 = start(3, "trap '' TERM; echo x > \"$TMPDIR/left\"; exec sleep 60")
    await until(lambda: (t3 / "left").exists(), "the run's write into its TMPDIR")
    assert runner.run is not None
    await runner.stop_run(runner.run, "stopped by the test")
    await until(lambda: ended(3), lambda: f"run 3's end: {sent}")
    t4 = await ran(4, "true")
    st = os.lstat(t4)
    assert (t3 / "left").read_text() == "x\n", "the killed run's TMPDIR stays, with what it holds, for the cleanup"
    assert st.st_ino != os.lstat(t3).st_ino and list(t4.iterdir()) == []
    assert oct(st.st_mode & 0o777) == "0o700" and st.st_uid == os.getuid()


def test_a_tmpdir_served_unlisted_whose_run_left_a_file_and_put_its_time_back_is_not_the_next_runs(
    root: Path,
) -> None:
    """The stamp carried over a reuse without a listing: a run that leaves a file and puts
    the TMPDIR's times back (main: the file was in the next run's TMPDIR, and in every
    later run's, none of them changing its entries)."""
    dirs = RunDirs(lambda: True)
    for n in (1, 2, 3):  # 1 made, 2 listed and stamped, 3 served unlisted
        r = run(root, n)
        p = made(dirs, r)
        dirs.done(r)
    _time_put_back(_file)(p)
    p4 = made(dirs, run(root, 4))
    assert p4.stat().st_ino != p.stat().st_ino and (p / "f").exists(), "it stays, with its file, for the cleanup"
