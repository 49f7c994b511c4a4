"""File and storage faults for ``bench/faults.py``: another owner, planted symlinks,
anchor + WAL removal, a corrupt metrics page, an external exclusive lock, a full tmpfs.

Each case runs the real verbs as subprocesses and counts from what happened:
attempts; held (the case's guarantee held: refused naming the file, reported, stayed
up, ...); lost (events answered as done that are not in the log, or a loss nobody
reported); tracebacks (in any verb's stderr); peak RSS of the host process (or of the
largest verb when no host runs), from ``wait4``'s rusage.
"""

from __future__ import annotations

import contextlib
import json
import os
import pwd
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OTHER_USER = "opsdeck-other"
LOCK_HELD_S = 25.0


@dataclass
class Case:
    name: str
    attempts: int = 0
    held: int = 0
    lost: int = 0
    tracebacks: int = 0
    peak_rss_mb: float = 0.0
    notes: list[str] = field(default_factory=list)

    def line(self) -> str:
        extra = f" ({'; '.join(self.notes)})" if self.notes else ""
        return (
            f"{self.name}: attempts {self.attempts}, held {self.held}/{self.attempts}, lost {self.lost}, "
            f"tracebacks {self.tracebacks}, peak host RSS {self.peak_rss_mb:.0f} MB{extra}"
        )


@dataclass
class Ran:
    rc: int
    out: str
    err: str
    rss_mb: float


def opsdeck(env: dict[str, str], *args: str, timeout: float = 300) -> Ran:
    """One verb as a subprocess; its peak RSS from wait4's rusage."""
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        p = subprocess.Popen([sys.executable, "-m", "opsdeck", *args], stdout=out, stderr=err, cwd=ROOT, env=env)
        deadline = time.monotonic() + timeout
        while True:
            pid, status, ru = os.wait4(p.pid, os.WNOHANG)
            if pid:
                break
            if time.monotonic() > deadline:
                p.kill()
                pid, status, ru = os.wait4(p.pid, 0)
                break
            time.sleep(0.05)
        p.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        return Ran(p.returncode, out.read(), err.read(), ru.ru_maxrss / 1024)


class Serve:
    """``opsdeck serve`` in the background: its stderr lines, its peak RSS at exit."""

    def __init__(self, env: dict[str, str], *args: str) -> None:
        self.lines: list[str] = []
        self.p = subprocess.Popen(
            [sys.executable, "-m", "opsdeck", "serve", *args],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
            cwd=ROOT,
            env=env,
        )
        self.listening = threading.Event()
        threading.Thread(target=self._read, daemon=True).start()
        self.listening.wait(120)
        self.rss_mb = 0.0

    def _read(self) -> None:
        assert self.p.stderr is not None
        for line in self.p.stderr:
            self.lines.append(line)
            if line.startswith("# listening on unix:"):
                self.listening.set()
        self.listening.set()

    def alive(self) -> bool:
        return self.p.poll() is None

    def said(self, words: str) -> bool:
        return any(words in x for x in self.lines)

    def stop(self) -> int:
        if self.p.poll() is None:
            self.p.terminate()
        _, status, ru = os.wait4(self.p.pid, 0)
        self.p.returncode = os.waitstatus_to_exitcode(status)
        self.rss_mb = ru.ru_maxrss / 1024
        return self.p.returncode

    @property
    def tracebacks(self) -> int:
        return sum("Traceback" in x for x in self.lines)


def _wait(cond: Callable[[], bool], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.2)
    return True


def _count(db: Path) -> int:
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        return int(con.execute("SELECT count(*) FROM events").fetchone()[0])
    finally:
        con.close()


def _make_db(env: dict[str, str], db: Path, advance: str = "5m") -> None:
    r = opsdeck(env, "exec", "--db", str(db), "--create", "--advance", advance, "/coordination-hub checkpoint")
    if r.rc != 0:
        raise RuntimeError(f"cannot build {db}: {r.err}")


def _tb(*rs: Ran) -> int:
    return sum("Traceback" in r.err for r in rs)


def _health(db: Path) -> dict:
    import asyncio

    sys.path.insert(0, str(ROOT))
    from core.host.client import HostClient

    async def go() -> dict:
        client = HostClient.for_db(db)
        if client is None:
            return {}
        async with client:
            return await client.health()

    try:
        return asyncio.run(go())
    except Exception:  # a host that is not there answers nothing
        return {}


# -- the cases ------------------------------------------------------------------------
def another_owner(env: dict[str, str], work: Path, n: int) -> Case:
    c = Case("another owner's database")
    if os.geteuid() != 0 or shutil.which("useradd") is None:
        c.notes.append("not run: needs root and useradd for a second local user")
        return c
    try:
        uid = pwd.getpwnam(OTHER_USER).pw_uid
    except KeyError:
        subprocess.run(["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", OTHER_USER])
        uid = pwd.getpwnam(OTHER_USER).pw_uid
    db = work / "theirs.db"
    _make_db(env, db)
    for p in (db, Path(f"{db}.head")):
        os.chown(p, uid, -1)
    before = _count(db)
    verbs = [
        ("exec", "--db", str(db), "/coordination-hub checkpoint"),
        ("verify", "--db", str(db)),
        ("events", "--db", str(db)),
        ("serve", "--db", str(db)),
    ]
    for i in range(n):
        r = opsdeck(env, *verbs[i % len(verbs)])
        c.attempts += 1
        c.held += r.rc == 2 and f"uid {uid}" in r.err and str(db) in r.err
        c.tracebacks += _tb(r)
        c.peak_rss_mb = max(c.peak_rss_mb, r.rss_mb)
    c.lost += max(before - _count(db), 0)
    if _count(db) != before:
        c.notes.append("the refused database changed")
    return c


def planted_symlinks(env: dict[str, str], work: Path, n: int) -> Case:
    c = Case("planted .head/.lease symlinks")
    db = work / "fleet.db"
    _make_db(env, db)
    target = work / "precious"
    for i in range(n):
        which = (".head",), (".lease",), (".head", ".lease")
        planted = which[i % 3]
        target.write_bytes(b"precious " * 40)
        os.chmod(target, 0o644)
        saved = {s: Path(f"{db}{s}").read_bytes() if Path(f"{db}{s}").exists() else None for s in planted}
        for s in planted:
            Path(f"{db}{s}").unlink(missing_ok=True)
            Path(f"{db}{s}").symlink_to(target)
        before = _count(db)
        r = opsdeck(env, "exec", "--db", str(db), "/coordination-hub checkpoint")
        c.attempts += 1
        untouched = target.read_bytes() == b"precious " * 40 and (target.stat().st_mode & 0o777) == 0o644
        c.held += r.rc == 2 and "symlink" in r.err and untouched and _count(db) == before
        c.tracebacks += _tb(r)
        c.peak_rss_mb = max(c.peak_rss_mb, r.rss_mb)
        for s, raw in saved.items():
            Path(f"{db}{s}").unlink()
            if raw is not None:
                Path(f"{db}{s}").write_bytes(raw)
                os.chmod(f"{db}{s}", 0o600)
    return c


def anchor_wal_removal(env: dict[str, str], work: Path, n: int) -> Case:
    """Commits that lived only in the WAL, removed with the anchor: every verb must say so."""
    import asyncio

    sys.path.insert(0, str(ROOT))
    from core.engine import Engine
    from core.session import open_sim

    c = Case("anchor + WAL removal")
    removed = 0
    for i in range(n):
        src, copy = work / f"src{i}.db", work / f"lost{i}.db"

        async def build(src: Path = src, copy: Path = copy, i: int = i) -> int:
            eng = await open_sim(src, demo=True, seed=i)
            await eng.advance(60)
            await eng.close()
            eng = await Engine.open(src)
            for k in range(5 + i):
                eng.set_setting(f"after_{k}", k)
                await eng.flush()
            shutil.copyfile(src, copy)  # the main file only: the WAL's commits and the anchor are gone
            if i % 2:
                raw = bytearray(Path(f"{src}.head").read_bytes())
                raw[21] ^= 1
                Path(f"{copy}.head").write_bytes(bytes(raw))
            head = eng.state.seq
            await eng.close()
            return head

        head = asyncio.run(build())
        left = _count(copy)
        removed += head - left
        v = opsdeck(env, "verify", "--db", str(copy))
        e = opsdeck(env, "events", "--db", str(copy))
        x = opsdeck(env, "exec", "--db", str(copy), "/coordination-hub checkpoint")
        c.attempts += 1
        reported = v.rc == 1 and e.rc == 1 and x.rc == 2 and all(f"{copy}.head" in r.out + r.err for r in (v, e, x))
        c.held += reported and _count(copy) == left
        c.lost += 0 if reported else head - left  # a loss nobody reported
        c.tracebacks += _tb(v, e, x)
        c.peak_rss_mb = max(c.peak_rss_mb, v.rss_mb, e.rss_mb, x.rss_mb)
    c.notes.append(f"{removed} committed events removed with the WAL, every removal reported")
    return c


def corrupt_metrics_page(env: dict[str, str], work: Path, n: int) -> Case:
    c = Case("corrupt metrics page")
    base = work / "samples.db"
    _make_db(env, base, advance="4h")
    con = sqlite3.connect(base)
    size = con.execute("PRAGMA page_size").fetchone()[0]
    pages = [r[0] for r in con.execute("SELECT pageno FROM dbstat WHERE name='metrics' AND pagetype='leaf'")]
    con.close()
    for i in range(n):
        db = work / f"metrics{i}.db"
        shutil.copyfile(base, db)
        shutil.copyfile(f"{base}.head", f"{db}.head")
        page = pages[(i * 7919) % len(pages)]
        with open(db, "r+b") as fh:
            fh.seek((page - 1) * size)
            fh.write(b"\xff" * 16)
        v = opsdeck(env, "verify", "--db", str(db))
        before = _count(db)
        s = Serve(env, "--db", str(db), "--speed", "600")
        x = opsdeck(env, "exec", "--db", str(db), "/coordination-hub checkpoint")
        up = s.alive()
        rc = s.stop()
        c.attempts += 1
        c.held += v.rc == 1 and "table metrics" in v.out and up and x.rc == 0 and rc == 0 and _count(db) > before
        c.tracebacks += _tb(v, x) + s.tracebacks
        c.peak_rss_mb = max(c.peak_rss_mb, s.rss_mb)
    return c


def external_lock(env: dict[str, str], work: Path, n: int) -> Case:
    c = Case(f"external BEGIN EXCLUSIVE held {LOCK_HELD_S:g} s")
    for i in range(n):
        db = work / f"locked{i}.db"
        _make_db(env, db)
        s = Serve(env, "--db", str(db), "--speed", "600")
        locker = subprocess.Popen(
            [
                sys.executable,
                "-c",
                "import sqlite3, sys, time\nc = sqlite3.connect(sys.argv[1], isolation_level=None)\n"
                "c.execute('BEGIN EXCLUSIVE')\nprint('held', flush=True)\ntime.sleep(float(sys.argv[2]))\n"
                "c.execute('COMMIT')\n",
                str(db),
                str(LOCK_HELD_S),
            ],
            stdout=subprocess.PIPE,
            text=True,
        )
        assert locker.stdout is not None
        locker.stdout.readline()
        said = _wait(lambda s=s: s.said("holds a lock"), 30)
        x = opsdeck(env, "exec", "--db", str(db), "--json", "/coordination-hub checkpoint")
        locker.wait(60)
        released = _wait(lambda s=s: s.said("was released after"), 30)
        up = s.alive()
        rc = s.stop()
        cp = json.loads(x.out)["result"]["checkpoint"] if x.rc == 0 else None
        con = sqlite3.connect(db)
        recorded = cp is not None and con.execute("SELECT 1 FROM checkpoints WHERE id=?", (cp,)).fetchone()
        con.close()
        c.attempts += 1
        c.held += said and released and up and rc == 0 and x.rc == 0
        c.lost += x.rc == 0 and not recorded
        c.tracebacks += _tb(x) + s.tracebacks
        c.peak_rss_mb = max(c.peak_rss_mb, s.rss_mb)
    return c


@contextlib.contextmanager
def _tmpfs(where: Path, size: str = "20m") -> Iterator[bool]:
    where.mkdir()
    ok = (
        os.geteuid() == 0
        and subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(where)]).returncode == 0
    )
    try:
        yield ok
    finally:
        if ok:
            subprocess.run(["umount", "-l", str(where)])


def full_tmpfs(env: dict[str, str], work: Path, n: int) -> Case:
    c = Case("full 20 MB tmpfs")
    for i in range(n):
        with _tmpfs(work / f"disk{i}") as mounted:
            if not mounted:
                c.notes.append("not run: needs root to mount a tmpfs")
                return c
            db = work / f"disk{i}" / "full.db"
            s = Serve(env, "--demo", "--db", str(db), "--speed", "3000")
            filler = work / f"disk{i}" / "filler"
            with open(filler, "wb", buffering=0) as fh, contextlib.suppress(OSError):
                while True:
                    fh.write(b"\0" * 4096)
            full = _wait(lambda db=db: _health(db).get("storage", {}).get("state") == "full", 120)
            answers: list[tuple[str, int]] = []
            for k in range(3):
                label = f"full{k}"
                x = opsdeck(env, "exec", "--db", str(db), f'/coordination-hub checkpoint \'{{"label": "{label}"}}\'')
                answers.append((label, x.rc))
                c.tracebacks += _tb(x)
            refused = all(rc == 1 for _, rc in answers)
            filler.unlink()
            back = _wait(lambda db=db: _health(db).get("storage", {}).get("state") == "ok", 60)
            x = opsdeck(env, "exec", "--db", str(db), '/coordination-hub checkpoint \'{"label": "after"}\'')
            answers.append(("after", x.rc))
            up = s.alive()
            rc = s.stop()
            ev = opsdeck(env, "events", "--db", str(db), "--type", "CHECKPOINT_CREATED", "--json")
            labels = {json.loads(line)["data"]["label"] for line in ev.out.splitlines()}
            v = opsdeck(env, "verify", "--db", str(db))
            c.attempts += 1
            c.held += full and refused and back and up and rc == 0 and x.rc == 0 and v.rc == 0
            c.lost += sum(1 for label, code in answers if code == 0 and label not in labels)
            c.tracebacks += _tb(x, ev, v) + s.tracebacks
            c.peak_rss_mb = max(c.peak_rss_mb, s.rss_mb)
    return c


def files_cases(work: Path, trials: int = 4, lock_trials: int = 1) -> list[Case]:
    """Every file/storage case, ``trials`` attempts each (the lock case ``lock_trials``:
    each holds the lock 25 s)."""
    env = dict(os.environ, OPSDECK_HOME=str(work / "home"))
    out = []
    for fn, n in (
        (another_owner, trials),
        (planted_symlinks, trials),
        (anchor_wal_removal, trials),
        (corrupt_metrics_page, trials),
        (external_lock, lock_trials),
        (full_tmpfs, max(1, trials // 2)),
    ):
        d = work / fn.__name__
        d.mkdir()
        out.append(fn(env, d, n))
    return out


if __name__ == "__main__":
    with tempfile.TemporaryDirectory(prefix="opsdeck-faults-files-") as d:
        for case in files_cases(Path(d), int(sys.argv[1]) if len(sys.argv) > 1 else 4):
            print(case.line(), flush=True)
