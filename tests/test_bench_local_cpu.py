"""bench/local_whole's CPU figures of a whole run: its whole process tree counted (the
agent hosts outlive the launcher that forked them: only a subreaper reaps them), and
the rows that print them beside the walls, which bench/goals still judges alone."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from bench.goals import read_local
from bench.local_whole import cpu_rows, whole_rows

ROUNDS = "ratio per round | 1.10x, 0.90x\nratio | **1.00x** median, 0.90x worst (goal >= 0.6x)\n"
TREE = [sys.executable, str(Path(__file__).resolve().parent.parent / "bench" / "local_whole.py"), "--tree"]
BURN = "import time\nt = time.process_time()\nwhile time.process_time() - t < 0.3: pass"


def tree(*cmd: str) -> dict[str, float]:
    out = subprocess.run([*TREE, *cmd], capture_output=True, check=True, timeout=60).stdout
    return json.loads(out)


def test_the_cpu_of_a_process_that_outlives_its_parent_is_counted() -> None:
    # The command exits at once (its own CPU: an interpreter's start, well under 0.3 s);
    # its child, orphaned, burns 0.3 s of CPU after that: only a subreaper reaps it.
    got = tree(sys.executable, "-c", f"import subprocess, sys; subprocess.Popen([sys.executable, '-c', {BURN!r}])")
    assert got["rc"] == 0 and got["left"] == 0
    assert got["cpu"] >= 0.3, got


def test_the_commands_exit_status_is_passed_on() -> None:
    got = tree("sh", "-c", "exit 3")
    assert got["rc"] == 3 and got["left"] == 0


def test_cpu_rows_give_each_size_and_what_a_task_more_costs() -> None:
    rows = dict(cpu_rows({100: [(0.5, 0.05), (0.7, 0.05)], 1100: [(2.6, 1.05), (2.6, 1.05)]}))
    assert rows["whole run CPU, 100 tasks (console, launcher, hosts and tasks vs xargs and its `true`s)"] == (
        "0.50 s vs 0.05 s = 0.10x, 0.70 s vs 0.05 s = 0.07x"
    )
    # medians 0.6 -> 2.6 s over 1,000 tasks: 2 ms; xargs 1 ms; the line at no task: 0.6 - 0.2 s
    assert rows["whole run CPU per task more, 100 -> 1100 tasks (medians' difference)"] == (
        "opsdeck 2.000 ms vs xargs 1.000 ms of CPU per task = 0.50x; opsdeck's start-up and end by the same line 0.40 CPU s"
    )
    assert list(dict(cpu_rows({100: [(0.5, 0.05)]}))) == [
        "whole run CPU, 100 tasks (console, launcher, hosts and tasks vs xargs and its `true`s)"
    ]


def test_the_goal_is_still_judged_on_the_walls_alone() -> None:
    walls = {600: [(1.0, 0.3)], 5000: [(4.0, 2.0)]}
    # CPU ratios that would pass: the judged row must not take them.
    cpu = {600: [(0.4, 0.4)], 5000: [(2.0, 2.0)]}
    text = ROUNDS + "".join(f"{k} | {v}\n" for k, v in [*whole_rows(walls), *cpu_rows(cpu)])
    alone = ROUNDS + "".join(f"{k} | {v}\n" for k, v in whole_rows(walls))
    judged, before = read_local(text)[1], read_local(alone)[1]
    assert judged == before
    assert judged.met is False and "600 tasks: 0.30x median" in judged.now and "a task more" in judged.now
