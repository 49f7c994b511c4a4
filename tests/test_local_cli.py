"""``opsdeck run --headless``: exit status, blocked dependents, the example workload."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from .conftest import REPO, opsdeck_cmd
from .local_harness import task_toml, workflow_toml

EXAMPLE_BOUND_S = 600


def pool(size: int) -> str:
    """A file's runtime (half-second heartbeat and samples) and its one pool "p" of ``size``
    agents of specialization "s"."""
    return f"""
[runtime]
heartbeat_s = 0.5
sample_s = 0.5
[[pools]]
name = "p"
specializations = ["s"]
size = {size}"""


def run(*args: str, timeout: float = 90) -> subprocess.CompletedProcess[str]:
    return subprocess.run(opsdeck_cmd("run", *args), capture_output=True, text=True, timeout=timeout)


@pytest.mark.slow
def test_a_failed_workflow_exits_1_and_its_dependents_are_cancelled(tmp_path: Path) -> None:
    f = tmp_path / "fail.toml"
    f.write_text(
        pool(1)
        + workflow_toml("first", task_toml("boom", "sh -c 'echo going down; exit 3'", retries=1))
        + workflow_toml("second", task_toml("never", "touch never-ran"), depends_on=["first"])
    )
    r = run(str(f), "--db", str(tmp_path / "r.db"), "--headless", timeout=60)
    assert r.returncode == 1, r.stderr
    failed = [line for line in r.stdout.splitlines() if line.startswith("TASK_FAILED")]
    assert len(failed) == 2 and "exit status 3" in failed[0] and "going down" in failed[0]
    assert '"retry":true' in failed[0] and '"retry":false' in failed[1]
    assert "WORKFLOW_CANCELLED" in r.stdout and "# second: cancelled" in r.stderr and "# first: failed" in r.stderr
    assert not (tmp_path / "never-ran").exists()


@pytest.mark.slow
def test_example_workload_completes(tmp_path: Path) -> None:
    import os

    env = {k: v for k, v in os.environ.items() if k != "OPSDECK_WORK"}  # as the README runs it
    argv = opsdeck_cmd("run", str(REPO / "examples" / "local_workload.toml"))
    try:
        # About 10 s on 2 idle cores, but its chain of Python processes (the console, four
        # agent hosts, a dozen tasks) and its 2 s CPU burners share the machine's cores
        # with everything else running: under load it once ran past a bound of 120 s.
        # The bound is for a run that hangs, not for a slow one.
        r = subprocess.run(
            [*argv, "--db", str(tmp_path / "ex.db"), "--headless"],
            capture_output=True,
            text=True,
            timeout=EXAMPLE_BOUND_S,
            env=env,
        )
    except subprocess.TimeoutExpired as exc:
        err = exc.stderr.decode(errors="replace") if isinstance(exc.stderr, bytes) else str(exc.stderr or "")
        pytest.fail(f"the example did not finish in {EXAMPLE_BOUND_S} s; its stderr ends with:\n{err[-3000:]}")
    assert r.returncode == 0, r.stderr[-3000:]
    for wf in ("build_and_test", "number_crunch", "memory_pressure", "report"):
        assert f"# {wf}: completed" in r.stderr
    # the tasks handed their files to each other through the run's shared directory
    assert (tmp_path / "ex.db.agents" / "shared" / "opsdeck-example" / "calc.tar.gz").exists()
    assert "Ran 10 tests" in r.stdout and "Ran 2 tests" in r.stdout, "the test shards ran the generated tests"


def test_a_workflow_ending_first_does_not_end_the_run(tmp_path: Path) -> None:
    """The run ends at the commit of the last workflow's end (not at the next tick); the
    case that must not end it: another workflow's end while one still runs."""
    f = tmp_path / "two.toml"
    f.write_text(
        pool(2)
        + workflow_toml("quick", task_toml("t", "true"))
        + workflow_toml("later", task_toml("t", "sh -c 'sleep 1; touch later-ran'"))
    )
    r = run(str(f), "--db", str(tmp_path / "r.db"), "--headless", timeout=60)
    assert r.returncode == 0, r.stderr
    assert "# quick: completed" in r.stderr and "# later: completed" in r.stderr
    assert (tmp_path / "later-ran").exists()
    ends = [line.split(":", 1)[0] for line in r.stdout.splitlines() if line.startswith("WORKFLOW_COMPLETED")]
    assert len(ends) == 2


def test_a_run_over_before_its_pacing_starts_is_not_one_that_ended_before(tmp_path: Path) -> None:
    """The agents run as soon as they connect, so a one-task run can end before the
    pacing loop starts: it is still this run's end (no "already ended" note, its outcome
    printed). The case that must say so: the same file
    again on that database, where every workflow had ended before."""
    f = tmp_path / "one.toml"
    f.write_text(pool(1) + workflow_toml("one", task_toml("t", "true")))
    db = str(tmp_path / "r.db")
    r = run(str(f), "--db", db, "--headless", timeout=60)
    assert r.returncode == 0, r.stderr
    assert "already ended" not in r.stderr and "# one: completed" in r.stderr
    assert [ln.split(":", 1)[0] for ln in r.stdout.splitlines()].count("WORKFLOW_COMPLETED") == 1
    again = run(str(f), "--db", db, "--headless", timeout=60)
    assert again.returncode == 0, again.stderr
    assert "already ended" in again.stderr and "TASK_STARTED" not in again.stdout


def test_a_run_refused_for_a_held_database_starts_no_launcher(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A database a live host holds gets the run refused (or a console attached): no agent
    host will be started here, so neither is the hosts' launcher (an interpreter importing
    the agent host, for nothing). The case that starts one early is every other local run."""
    import core.runtimes.launching as launching
    from core.host.lease import acquire
    from opsdeck.cli import main

    started: list[Path] = []
    monkeypatch.setattr(launching, "start_early", started.append)
    f = tmp_path / "one.toml"
    f.write_text(pool(1) + workflow_toml("one", task_toml("t", "true")))
    db = tmp_path / "h.db"
    db.touch()
    lease = acquire(db, {"pid": 1})  # a live host holds it
    try:
        assert main(["run", str(f), "--headless", "--db", str(db)]) == 2
        assert started == []
    finally:
        lease.release()
    free = tmp_path / "free.db"
    assert main(["run", str(f), "--headless", "--db", str(free)]) == 0
    assert len(started) == 1 and started[0].name == "free.db.agents"
