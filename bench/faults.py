"""Fault injection figures: kills, corruptions, fuzzed commands, a second local user.

    python bench/faults.py [--kills 10] [--corruptions 24] [--commands 2000] [--seed 1]

* kills: SIGKILL of ``opsdeck demo --headless`` after a random number of printed
  lines; printed events missing from the log afterwards (acknowledged and lost).
* corruptions: ``tests/corruption_harness.py`` copies of a small database (bit flips
  in checkpoints, event rows, pages; emptied; truncated): how many ``verify``
  detects, how many every writer refuses, how many ended with a traceback or a hang.
* commands: random commands over the registry on a demo fleet: uncaught exceptions,
  and error responses that changed the state.
* second user: the agent-channel test with uid ``nobody`` (needs root).
* files and storage (``bench/faults_files.py``): another owner's database, planted
  .head/.lease symlinks, anchor + WAL removal, a corrupt metrics page, an external
  exclusive lock held 25 s, a full 20 MB tmpfs: attempts, held, lost, tracebacks,
  peak host RSS. ``--only-files`` runs just these.
* server (``bench/faults_server.py``): 200 stalled followers, a 1M-character command,
  a SIGSTOPped host, a 2 MiB output line, a foreign Origin, a ``setsid`` grandchild:
  attempts, held, lost, tracebacks, peak RSS.
Every figure is counted from what happened in this run.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def kills(n: int, rng: random.Random, work: Path) -> tuple[int, int, int]:
    """(kills, printed lines, printed lines missing from the log)."""
    from core.events import canonical_json, parse_line

    def norm(line: str) -> tuple[str, str, str, str]:
        h = parse_line(line)
        return h.type, h.component, h.scope, canonical_json(h.data)

    printed_total = lost = 0
    env = dict(os.environ, OPSDECK_HOME=str(work / "home"))
    for i in range(n):
        db = work / f"kill{i}.db"
        want = rng.randint(20, 2000)
        p = subprocess.Popen(
            [sys.executable, "-m", "opsdeck", "demo", "--headless", "--for", "1000000", "--db", str(db)],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            cwd=ROOT,
            env=env,
        )
        assert p.stdout is not None
        got = b""
        deadline = time.monotonic() + 120
        while got.count(b"\n") < want and time.monotonic() < deadline:
            chunk = os.read(p.stdout.fileno(), 65536)
            if not chunk:
                break
            got += chunk
        os.kill(p.pid, signal.SIGKILL)
        rest, _ = p.communicate(timeout=30)
        printed = [norm(x) for x in (got + rest).decode().split("\n")[:-1]]
        r = subprocess.run(
            [sys.executable, "-m", "opsdeck", "events", "--db", str(db)],
            capture_output=True,
            text=True,
            cwd=ROOT,
            env=env,
            timeout=120,
        )
        log = {norm(x) for x in r.stdout.splitlines()}
        printed_total += len(printed)
        lost += sum(1 for x in printed if x not in log)
    return n, printed_total, lost


def corruptions(n: int, seed: int, work: Path) -> dict[str, int]:
    r = subprocess.run(
        [sys.executable, "-m", "tests.corruption_harness", str(seed), str(n), str(work / "corrupt")],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=1800,
    )
    report = json.loads(r.stdout.strip().splitlines()[-1])
    out = {
        "trials": 0,
        "damaged": 0,
        "detected_by_verify": 0,
        "refused_by_every_writer": 0,
        "named_seq_or_kind": 0,
        "tracebacks": 0,
        "hangs": 0,
    }
    for t in report["trials"]:
        out["trials"] += 1
        v = t["verify"]
        writers = [x for x in t["verbs"] if x["argv"] in ("exec", "script", "demo")]
        everything = [v] + t["verbs"]
        out["tracebacks"] += sum(1 for x in everything if x.get("raised"))
        out["hangs"] += sum(1 for x in everything if x.get("hung") or x.get("leaked_threads"))
        damaged = v["rc"] != 0 or any(x["rc"] != 0 for x in writers)
        if not damaged:
            continue
        out["damaged"] += 1
        out["detected_by_verify"] += v["rc"] != 0
        out["refused_by_every_writer"] += all(x["rc"] != 0 and x["events_after"] == x["events_before"] for x in writers)
        out["named_seq_or_kind"] += all(
            any(
                w in x["stderr"]
                for w in ("seq ", "checkpoint ", "not an opsdeck database", "truncated", "pages", "damaged")
            )
            for x in writers
        )
    return out


def commands(n: int, seed: int) -> dict[str, int]:
    from core.commands import run_command
    from core.host.language import LANGUAGE as REGISTRY
    from core.host.language import services
    from core.session import memory_sim

    rng = random.Random(seed)
    eng = memory_sim(seed=seed)
    loop = asyncio.new_event_loop()
    loop.run_until_complete(eng.advance(600))
    specs = sorted(REGISTRY, key=lambda s: s.name)
    ids = sorted(eng.state.workflows) + ["nope", "", "é", "\udcff"]
    values: list[object] = [None, True, 0, -1, 10**12, 1e308, "x", "é", [], {}, ["workflow_001"], {"a": 1}, *ids]
    out = {"commands": 0, "errors": 0, "uncaught": 0, "errors_that_changed_state": 0}
    for _ in range(n):
        spec = rng.choice(specs)
        parts = [f"/{spec.component}", spec.operation]
        if rng.random() < 0.5:
            parts.append(rng.choice(ids))
        if rng.random() < 0.6:
            fields = [f["name"] for f in spec.fields()] + ["bogus"]
            payload = {rng.choice(fields): rng.choice(values) for _ in range(rng.randint(0, 3))}
            parts.append("'" + json.dumps(payload).replace("'", "\\u0027") + "'")
        text = " ".join(parts)
        before = (eng.state.state_hash(), eng.state.seq)
        out["commands"] += 1
        try:
            resp = loop.run_until_complete(run_command(services(eng), text, actor="bench"))
        except Exception:
            out["uncaught"] += 1
            continue
        if resp["status"] == "error":
            out["errors"] += 1
            out["errors_that_changed_state"] += (eng.state.state_hash(), eng.state.seq) != before
        else:
            loop.run_until_complete(eng.advance(5))
    return out


def second_user() -> str:
    if os.geteuid() != 0:
        return "not run (needs root to switch to uid nobody)"
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            "tests/test_local_security.py",
            "-k",
            "another_user or squatted",
        ],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=600,
    )
    if r.returncode == 0:
        return (
            "refused: uid nobody could not connect to an agent host, could not command one whose socket was opened up "
            "(SO_PEERCRED), and a socket it squatted received 0 bytes from the console"
        )
    return "FAILED: " + (r.stdout.strip().splitlines() or ["?"])[-1]


def server_report(work: Path, followers: int) -> None:
    """The server, client, agent-output and web cases (``bench/faults_server.py``)."""
    from bench.faults_server import server_faults

    (work / "server").mkdir(exist_ok=True)
    for case in server_faults(work / "server", followers):
        print(case.line())


def file_storage_faults(work: Path, trials: int, lock_trials: int) -> None:
    """The file and storage cases (``bench/faults_files.py``), one line each."""
    sys.path.insert(0, str(ROOT / "bench"))
    from faults_files import files_cases

    d = work / "files"
    d.mkdir()
    for case in files_cases(d, trials, lock_trials):
        print(case.line(), flush=True)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--kills", type=int, default=10)
    ap.add_argument("--corruptions", type=int, default=24)
    ap.add_argument("--commands", type=int, default=2000)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--followers", type=int, default=200, help="stalled followers of the server case")
    ap.add_argument("--only-server", action="store_true", help="run only the server cases")
    ap.add_argument("--file-trials", type=int, default=4, help="attempts of each file/storage case")
    ap.add_argument("--lock-trials", type=int, default=1, help="attempts of the 25 s external lock")
    ap.add_argument("--only-files", action="store_true", help="run only the file/storage cases")
    args = ap.parse_args()
    rng = random.Random(args.seed)
    with tempfile.TemporaryDirectory(prefix="opsdeck-faults-") as d:
        work = Path(d)
        t0 = time.perf_counter()
        if args.only_server:
            server_report(work, args.followers)
            print(f"({time.perf_counter() - t0:.0f} s)")
            return 0
        if args.only_files:
            file_storage_faults(work, args.file_trials, args.lock_trials)
            print(f"({time.perf_counter() - t0:.0f} s)")
            return 0
        k, printed, lost = kills(args.kills, rng, work)
        print(f"kills of demo --headless: {k}; printed events {printed}; acknowledged and lost {lost}")
        c = corruptions(args.corruptions, args.seed, work)
        print(
            f"corruptions: {c['trials']} trials, {c['damaged']} damaged; detected by verify {c['detected_by_verify']}/{c['damaged']}; "
            f"refused by every writer {c['refused_by_every_writer']}/{c['damaged']}; named {c['named_seq_or_kind']}/{c['damaged']}; "
            f"tracebacks {c['tracebacks']}; hangs {c['hangs']}"
        )
        f = commands(args.commands, args.seed)
        print(
            f"fuzzed commands: {f['commands']}; errors {f['errors']}; uncaught exceptions {f['uncaught']}; "
            f"errors that changed state {f['errors_that_changed_state']}"
        )
        print(f"second local user: {second_user()}")
        server_report(work, args.followers)
        file_storage_faults(work, args.file_trials, args.lock_trials)
        print(f"({time.perf_counter() - t0:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
