"""bench/local_bench's whole-run rows and bench/goals' reading of them: the goal is judged
on every run of every size (the worst counts), not on the size that flatters."""

from __future__ import annotations

from bench.goals import read_local
from bench.local_whole import whole_rows

ROUNDS = "ratio per round | 1.10x, 0.90x\nratio | **1.00x** median, 0.90x worst (goal >= 0.6x)\n"


def printed(whole: dict[int, list[tuple[float, float]]]) -> str:
    return ROUNDS + "".join(f"{k} | {v}\n" for k, v in whole_rows(whole))


def test_two_sizes_give_a_row_each_and_what_a_task_more_costs() -> None:
    rows = dict(whole_rows({100: [(2.0, 0.1), (2.2, 0.1)], 1100: [(4.0, 1.1), (4.2, 1.1)]}))
    assert [k for k in rows if k.startswith("whole `opsdeck")] == [
        "whole `opsdeck run --headless` vs xargs, 100 tasks (process start to exit, hosts started and stopped)",
        "whole `opsdeck run --headless` vs xargs, 1100 tasks (process start to exit, hosts started and stopped)",
    ]
    more = rows["whole run per task more, 100 -> 1100 tasks (medians' difference)"]
    # medians 2.1 -> 4.1 s over 1,000 tasks: 2 ms; xargs 1 ms; the line at no task: 2.1 - 0.2 s
    assert (
        more
        == "opsdeck 2.000 ms vs xargs 1.000 ms per task (**0.50x**); opsdeck's start-up and end by the same line 1.90 s"
    )
    assert not any(k.startswith("whole run per task more") for k, _ in whole_rows({100: [(2.0, 0.1)]}))


def test_the_goal_is_met_only_when_every_run_of_every_size_is() -> None:
    good = read_local(printed({600: [(1.0, 0.7), (1.0, 0.8)], 5000: [(4.0, 3.0), (4.0, 2.8)]}))[1]
    assert good.met is True and "600 tasks: 0.75x median" in good.now and "5,000 tasks: 0.72x median" in good.now
    # Must NOT be met: the large size passes, the small one (start-up) does not.
    small_fails = read_local(printed({600: [(2.5, 0.35)] * 3, 5000: [(4.0, 3.0)] * 3}))[1]
    assert small_fails.met is False and "600 tasks: 0.14x median" in small_fails.now
    # Must NOT be met: one run under the goal among passing ones.
    one_run = read_local(printed({600: [(1.0, 0.7), (1.0, 0.5), (1.0, 0.7)]}))[1]
    assert one_run.met is False
    none = read_local(ROUNDS + "".join(f"{k} | {v}\n" for k, v in whole_rows({600: []})))[1]
    assert none.met is None
