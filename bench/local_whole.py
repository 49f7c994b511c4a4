"""The local benchmark's whole run: ``opsdeck run --headless`` of a workflow file of
``true`` tasks, from the process's start to its exit, beside ``xargs -P2 -n1 true`` run
as many times; the bench's workflow file (pools and agents), the compiling of the
checkout's modules before the runs are timed, and the rows that report the runs at each
size with what one task more costs, by wall and by CPU (the whole run's process tree is
counted by a subreaper, ``python local_whole.py --tree CMD...``: :func:`tree_run`). Used
by :mod:`local_bench` (and its file by :mod:`ray_bench`); no import of the engine: the
whole run is a process of its own.
"""

from __future__ import annotations

import resource
import statistics
import sys
import time
from pathlib import Path

HEARTBEAT_S = 1.0


def file_text(agents: int) -> str:
    return f"""
[runtime]
heartbeat_s = {HEARTBEAT_S}
sample_s = 1.0
stop_grace_s = 1.0

[[pools]]
name = "bench"
specializations = ["bench"]
size = {agents}
max_size = {agents + 10}

[[workflows]]
id = "warmup"
allocation = {{ cpu_cores = 1, memory_gb = 1, agents = {agents} }}
  [[workflows.phases]]
  name = "p"
    [[workflows.phases.tasks]]
    id = "t"
    command = ["true"]
    specialization = "bench"
    cpu = 0.01
    memory_gb = 0
"""


def xargs_run(n: int) -> tuple[float, float]:
    """The baseline, whole: ``xargs -P2 -n1 true`` running ``true`` n times. Its wall
    seconds, and the CPU seconds of xargs and its ``true`` children."""
    import subprocess

    c0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.monotonic()
    subprocess.run(["xargs", "-P2", "-n1", "true"], input=("x\n" * n).encode(), check=True)
    dt = time.monotonic() - t0
    c1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    return dt, c1.ru_utime - c0.ru_utime + c1.ru_stime - c0.ru_stime


def whole_run(agents: int, n: int, workdir: Path) -> tuple[float, float]:
    """What a user running the file once waits for: ``opsdeck run --headless`` of a
    workflow of ``n`` ``true`` tasks on ``agents`` agents, from the process's start to
    its exit (imports, the database, the agent hosts started and stopped; event lines
    to /dev/null). Its wall seconds, and the CPU seconds of its whole tree: the console,
    the launcher, the agent hosts and the tasks they ran (:func:`tree_run`)."""
    import json
    import subprocess

    workdir.mkdir(parents=True, exist_ok=True)
    cfg, wf_file, db = workdir / "config.toml", workdir / "whole.toml", workdir / "whole.db"
    cfg.write_text(
        f"[capacity]\nagents = {agents}\ncpu_cores = 64\nmemory_gb = 64\nconcurrent_workflows = 5\n\n"
        f"[workflow_limits]\nagents = {agents}\ncpu_cores = 8\nmemory_gb = 8\n"
    )
    tasks = "".join(
        f'    [[workflows.phases.tasks]]\n    id = "t{i:05d}"\n    command = ["true"]\n'
        '    specialization = "bench"\n    cpu = 0.01\n    memory_gb = 0\n'
        for i in range(n)
    )
    head = file_text(agents).partition("[[workflows]]")[0]
    wf_file.write_text(
        head + f'[[workflows]]\nid = "whole"\nallocation = {{ cpu_cores = 4, memory_gb = 4, agents = {agents} }}\n'
        '  [[workflows.phases]]\n  name = "p"\n' + tasks
    )
    cmd = [sys.executable, "-m", "opsdeck", "--config", str(cfg), "run", str(wf_file), "--headless", "--db", str(db)]
    out = subprocess.run(
        [sys.executable, str(Path(__file__).resolve()), "--tree", *cmd], capture_output=True, check=True
    ).stdout
    got = json.loads(out)
    if got["rc"] != 0 or got["left"]:
        raise subprocess.CalledProcessError(got["rc"], cmd, f"{got['left']} of its processes left running".encode())
    return got["wall"], got["cpu"]


TREE_WAIT_S = 10.0
"""How long :func:`tree_run` waits, after the command's exit, for processes it left."""


def tree_run(cmd: list[str]) -> dict[str, float | int]:
    """Run ``cmd`` (output to /dev/null) as this process's only child, made a child
    subreaper first: every process of its tree that outlives its parent (the agent
    hosts, once the launcher that forked them exits) becomes this one's child, and is
    reaped here. Its wall seconds (start to exit, the interpreter running this not
    counted), its exit status, the CPU seconds of the whole tree (each process counts
    what it reaped: a host its tasks), and how many of its processes were still running
    ``TREE_WAIT_S`` after its exit."""
    import ctypes
    import os
    import subprocess

    if ctypes.CDLL(None, use_errno=True).prctl(36, 1, 0, 0, 0) != 0:  # PR_SET_CHILD_SUBREAPER
        raise OSError(ctypes.get_errno(), "cannot become a child subreaper")
    t0 = time.monotonic()
    rc = subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL).returncode
    wall = time.monotonic() - t0
    left, deadline = 0, time.monotonic() + TREE_WAIT_S
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            break  # none left
        if pid == 0:
            if time.monotonic() > deadline:
                me = os.getpid()
                left = len(Path(f"/proc/{me}/task/{me}/children").read_text().split())
                break
            time.sleep(0.01)
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    return {"wall": wall, "rc": rc, "cpu": ru.ru_utime + ru.ru_stime, "left": left}


def compile_sources() -> int:
    """Compile opsdeck's own modules whose bytecode is missing or stale, before a whole
    run is timed: an installed package has its bytecode, and with
    ``PYTHONDONTWRITEBYTECODE`` set (as on this machine) an editable checkout would
    otherwise compile every changed module at every start, in the console and in each of
    the 20 agent hosts. How many it compiled."""
    import compileall
    import io
    from contextlib import redirect_stdout

    root = Path(__file__).resolve().parent.parent
    before = {p: p.stat().st_mtime_ns for pkg in PACKAGES for p in (root / pkg).rglob("*.pyc")}
    with redirect_stdout(io.StringIO()):
        for pkg in PACKAGES:
            if not compileall.compile_dir(root / pkg, quiet=1):
                raise SystemExit(f"local_bench: {root / pkg} does not compile")
    after = {p: p.stat().st_mtime_ns for pkg in PACKAGES for p in (root / pkg).rglob("*.pyc")}
    return sum(1 for p, t in after.items() if before.get(p) != t)


PACKAGES = ("core", "opsdeck", "tui", "themes")
"""The top-level packages of the checkout a whole run imports."""


Sizes = dict[int, list[tuple[float, float]]]
"""Per size of the whole runs: (opsdeck, xargs) figures of each run, walls or CPU seconds."""


def whole_rows(whole: Sizes) -> list[tuple[str, str]]:
    """A row per size of the whole runs (walls), and with two sizes or more what one task
    more costs (:func:`per_task_more`)."""
    rows = [
        (
            f"whole `opsdeck run --headless` vs xargs, {size} tasks (process start to exit, hosts started and stopped)",
            ", ".join(f"{ow:.2f} s vs {xw:.2f} s ({xw / ow:.2f}x)" for ow, xw in runs) or "not run (--whole 0)",
        )
        for size, runs in whole.items()
    ]
    more = per_task_more(whole)
    if more is not None:
        small, large, per_o, per_x, fixed = more
        ratio = f"{per_x / per_o:.2f}x" if per_o > 0 else "n/a"
        rows.append(
            (
                f"whole run per task more, {small} -> {large} tasks (medians' difference)",
                f"opsdeck {per_o * 1e3:.3f} ms vs xargs {per_x * 1e3:.3f} ms per task (**{ratio}**); "
                f"opsdeck's start-up and end by the same line {fixed:.2f} s",
            )
        )
    return rows


def cpu_rows(cpu: Sizes) -> list[tuple[str, str]]:
    """The same runs by CPU seconds, which the machine's load moves far less than walls:
    opsdeck's whole tree (console, launcher, agent hosts and the tasks they ran) against
    xargs and its ``true`` processes, a row per size, and what one task more costs."""
    rows = [
        (
            f"whole run CPU, {size} tasks (console, launcher, hosts and tasks vs xargs and its `true`s)",
            ", ".join(f"{oc:.2f} s vs {xc:.2f} s = {xc / oc:.2f}x" for oc, xc in runs) or "not run (--whole 0)",
        )
        for size, runs in cpu.items()
    ]
    more = per_task_more(cpu)
    if more is not None:
        small, large, per_o, per_x, fixed = more
        ratio = f"{per_x / per_o:.2f}x" if per_o > 0 else "n/a"
        rows.append(
            (
                f"whole run CPU per task more, {small} -> {large} tasks (medians' difference)",
                f"opsdeck {per_o * 1e3:.3f} ms vs xargs {per_x * 1e3:.3f} ms of CPU per task = {ratio}; "
                f"opsdeck's start-up and end by the same line {fixed:.2f} CPU s",
            )
        )
    return rows


def per_task_more(sizes: Sizes) -> tuple[int, int, float, float, float] | None:
    """With two sizes run or more: a straight line through the medians of the smallest
    and the largest size, (small, large, opsdeck's and xargs' slopes per task, opsdeck's
    value at no task: its start-up and end); None with fewer."""
    sized = sorted((size, runs) for size, runs in sizes.items() if runs)
    if len(sized) < 2:
        return None
    (small, s_runs), (large, l_runs) = sized[0], sized[-1]

    def med(runs: list[tuple[float, float]], i: int) -> float:
        return statistics.median(r[i] for r in runs)

    per_o, per_x = ((med(l_runs, i) - med(s_runs, i)) / (large - small) for i in (0, 1))
    return small, large, per_o, per_x, med(s_runs, 0) - small * per_o


if __name__ == "__main__" and sys.argv[1:2] == ["--tree"]:
    import json

    print(json.dumps(tree_run(sys.argv[2:])))
