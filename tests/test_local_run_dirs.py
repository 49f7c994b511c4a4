"""Each task run gets a private TMPDIR of its own, empty at its start: the previous
run's is renamed to it only when nothing was left in it and its task did not change
its mode or type; otherwise it stays, with what it holds, for the cleanup."""

from __future__ import annotations

import os
from pathlib import Path

from core.runtimes.task_run import Run, RunDirs


def run(tmp_root: Path, n: int) -> Run:
    return Run(
        {
            "task": f"w/t{n}",
            "attempt": 1,
            "env": {"TMPDIR": str(tmp_root / f"t{n}"), "OPSDECK_RUN_DIR": str(tmp_root.parent / "shared")},
        }
    )


def made(dirs: RunDirs, r: Run) -> Path:
    assert dirs.make(r) is None
    p = Path(r.msg["env"]["TMPDIR"])
    st = os.lstat(p)
    assert p.is_dir() and not p.is_symlink() and oct(st.st_mode & 0o777) == "0o700" and st.st_uid == os.getuid()
    assert list(p.iterdir()) == []
    return p


def test_an_empty_tmpdir_is_renamed_to_the_next_runs(tmp_path: Path) -> None:
    root = tmp_path / "tmp"
    root.mkdir(mode=0o700)
    dirs = RunDirs()
    first = run(root, 1)
    p1 = made(dirs, first)
    inode = p1.stat().st_ino
    dirs.done(first)
    p2 = made(dirs, run(root, 2))
    assert not p1.exists() and p2.stat().st_ino == inode
    assert (tmp_path / "shared").is_dir()


def test_a_tmpdir_left_with_files_or_opened_up_or_replaced_is_never_reused(tmp_path: Path) -> None:
    root = tmp_path / "tmp"
    root.mkdir(mode=0o700)
    dirs = RunDirs()
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
