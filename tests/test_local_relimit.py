"""Reallocation reaches running processes: after ``/resource-manager reallocate`` (and
``allocate``, and the guarantee of ``emergency-reallocation``) the running task's
process group carries its new limits, read back with psutil."""

from __future__ import annotations

import os
from pathlib import Path

import psutil
import pytest

from core.commands import run_command
from core.runtimes.limits import NICE_BY_BAND, REDUCED_NICE, Mechanisms
from core.runtimes.local import open_local
from core.session import memory_sim
from core.workflow_file import parse_workflow_text
from tests.local_harness import PY, Recorder, drive, group_members, header, task_toml, workflow_toml

SLEEPER = [PY, "-c", "import time\nfor i in range(600):\n    time.sleep(0.1)"]


def workflow(wf_id: str, priority: int, cpu_cores: int) -> str:
    return workflow_toml(
        wf_id,
        task_toml("sleep", SLEEPER, "shell", cpu=1.0),
        phase="p",
        priority=priority,
        allocation={"cpu_cores": cpu_cores, "memory_gb": 1, "agents": 1},
    )


TEXT = header() + workflow("donor", 50, 2) + workflow("taker", 95, 1)


def niceness(pgid: int) -> set[int]:
    return {p.nice() for p in group_members(pgid)}


async def test_reallocate_renices_the_running_processes(tmp_path: Path) -> None:
    wf = parse_workflow_text(TEXT, "relimit.toml")
    rec = Recorder()
    # Niceness is the mechanism under test (cgroups, where present, are a separate path).
    engine, runtime = await open_local(
        tmp_path / "r.db", wf, wf.specs(tmp_path), subscriber=rec, mechanisms=Mechanisms("rlimit_as", "nice", None)
    )
    try:
        await drive(engine, lambda: len(rec.of("TASK_STARTED")) == 2, timeout=20, what="both sleepers started")
        donor = engine.state.tasks["donor/sleep"]
        pgid = runtime.task_pgid(donor.agent)  # type: ignore[arg-type]
        assert pgid is not None
        base = psutil.Process().nice()
        await drive(
            engine,
            lambda: niceness(pgid) == {base + NICE_BY_BAND["MEDIUM"]},
            timeout=5,
            what=lambda: f"start niceness {niceness(pgid)}",
        )
        res = await run_command(
            engine,
            '/resource-manager reallocate \'{"from_workflow": "donor", "to_workflow": "taker", "cpu_cores": 1}\'',
        )
        assert res["status"] == "success", res
        # The donor's allocation is now below its base: its processes yield.
        assert niceness(pgid) == {base + NICE_BY_BAND["MEDIUM"] + REDUCED_NICE}
        live = res["result"]["live_limits"]
        assert live["applies"] and live["mechanisms"] == ["nice"] and live["relimited"] >= 1
        assert [e.data["task"] for e in rec.of("TASK_LIMITED")][:1] == ["donor/sleep"]
        # Giving it back (allocate) restores the band's niceness on the same processes.
        res = await run_command(engine, "/resource-manager allocate donor '{\"cpu_cores\": 2}'")
        assert res["status"] == "success", res
        assert niceness(pgid) == {base + NICE_BY_BAND["MEDIUM"]}
        # A guarantee (as emergency-reallocation gives the critical workflow) runs at 0.
        res = await run_command(
            engine,
            '/resource-manager emergency-reallocation \'{"strategy": "intelligent_triage", "actions": ['
            '{"action": "optimize_high_priority_workflow", "affected": ["donor"], '
            '"resource_guarantee": {"cpu": 1, "memory_gb": 0.5}}]}\'',
        )
        assert res["status"] == "success", res
        live = res["result"]["live_limits"]
        if os.geteuid() == 0 or base > 0:
            assert niceness(pgid) == {base} and live["relimited"] == 1
        else:  # lowering niceness needs CAP_SYS_NICE: the response says so, nothing is claimed
            task = live["workflows"]["donor"]["tasks"][0]
            assert "CAP_SYS_NICE" in task["errors"]["nice"] and live["failed"] == 1
    finally:
        await runtime.shutdown()
        await engine.close()


async def test_on_the_simulated_runtime_the_response_says_it_does_not_apply() -> None:
    eng = memory_sim(seed=0)
    await eng.advance(300)
    res = await run_command(eng, "/resource-manager allocate workflow_001 '{\"cpu_cores\": 3}'")
    assert res["status"] == "success", res
    assert res["result"]["live_limits"]["applies"] is False
    assert "not OS processes" in res["result"]["summary"]


WRITER = [PY, "-c", "import os\nopen(os.path.join(os.environ['TMPDIR'], 'scratch.bin'), 'wb').write(b'x' * 300000)"]

CLEANUP = header() + workflow_toml(
    "scratch", task_toml("write", WRITER, "shell"), task_toml("hold", SLEEPER, "shell"), phase="p", priority=50
)


async def test_emergency_cleanup_deletes_finished_tasks_temp_files(tmp_path: Path) -> None:
    wf = parse_workflow_text(CLEANUP, "cleanup.toml")
    rec = Recorder()
    engine, runtime = await open_local(tmp_path / "c.db", wf, wf.specs(tmp_path), subscriber=rec)
    try:
        # "running" is set when the holder is assigned; its TMPDIR is made by the agent's runner
        # before it spawns the process and reports started: wait for TASK_STARTED, not the status
        await drive(
            engine,
            lambda: (
                any(e.data.get("task") == "scratch/write" for e in rec.of("TASK_COMPLETED"))
                and any(e.data.get("task") == "scratch/hold" for e in rec.of("TASK_STARTED"))
                and engine.state.tasks["scratch/hold"].status.value == "running"
            ),
            timeout=20,
            what="the writer finished while the holder runs",
        )
        written = runtime.temp_dir("scratch/write", engine.state.tasks["scratch/write"].attempts) / "scratch.bin"
        holding = runtime.temp_dir("scratch/hold", engine.state.tasks["scratch/hold"].attempts)
        assert written.stat().st_size == 300000 and holding.is_dir()
        assert oct(written.parent.stat().st_mode & 0o777) == "0o700"
        res = await run_command(
            engine, '/coordination-hub emergency-cleanup \'{"actions": ["temp_file_cleanup", "cache_purging"]}\''
        )
        assert res["status"] == "success", res
        assert not written.exists() and not written.parent.exists()
        assert holding.is_dir(), "a running task keeps its temp directory"
        got = res["result"]["actions"]["temp_files"]
        assert got["files_removed"] == 1 and got["bytes_removed"] == 300000 and got["dirs_removed"] == 1
        assert res["result"]["resource_recovery"]["storage_bytes"] >= 300000
        basis = res["result"]["resource_recovery"]["basis"]
        assert basis["storage_bytes"].startswith("measured") and basis["memory_gb"].startswith("measured")
        assert basis["capacity"] == {"cpu_cores": "machine", "memory_gb": "machine"}
        assert "store" in res["result"]["actions"]
    finally:
        await runtime.shutdown()
        await engine.close()


async def test_temp_file_cleanup_does_not_apply_on_the_simulated_runtime() -> None:
    eng = memory_sim(seed=0)
    await eng.advance(300)
    res = await run_command(eng, '/coordination-hub emergency-cleanup \'{"actions": ["temp_file_cleanup"]}\'')
    assert res["status"] == "success"
    assert "temp_file_cleanup" in res["result"]["actions"]["not_applied"]
    assert res["result"]["resource_recovery"]["storage_bytes"] == 0
    assert res["result"]["resource_recovery"]["basis"]["memory_gb"].startswith("simulated")


async def test_reserve_renices_like_a_guarantee_and_allocate_reports_only_read_back_changes(tmp_path: Path) -> None:
    wf = parse_workflow_text(TEXT, "relimit.toml")
    rec = Recorder()
    engine, runtime = await open_local(
        tmp_path / "r.db", wf, wf.specs(tmp_path), subscriber=rec, mechanisms=Mechanisms("rlimit_as", "nice", None)
    )
    try:
        await drive(engine, lambda: len(rec.of("TASK_STARTED")) == 2, timeout=20, what="both sleepers started")
        donor = engine.state.tasks["donor/sleep"]
        pgid = runtime.task_pgid(donor.agent)  # type: ignore[arg-type]
        assert pgid is not None
        base = psutil.Process().nice()
        start = base + NICE_BY_BAND["MEDIUM"]
        await drive(engine, lambda: niceness(pgid) == {start}, timeout=5, what=lambda: f"nice {niceness(pgid)}")
        # allocate to a figure whose limits are those already in force: nothing changes, nothing is claimed
        n_limited = len(rec.of("TASK_LIMITED"))
        res = await run_command(engine, "/resource-manager allocate donor '{\"cpu_cores\": 2}'")
        assert res["status"] == "success", res
        live = res["result"]["live_limits"]
        assert live["relimited"] == 0 and live["unchanged"] == ["donor/sleep"], live
        assert niceness(pgid) == {start}
        await engine.flush()
        assert len(rec.of("TASK_LIMITED")) == n_limited, "no TASK_LIMITED for a limit that already held"
        # reserve applies the guarantee's mechanism: the group runs at the host's niceness, read back
        res = await run_command(engine, '/resource-manager reserve donor \'{"cpu": 1, "memory_gb": 0.5}\'')
        assert res["status"] == "success", res
        live = res["result"]["live_limits"]
        task = live["workflows"]["donor"]["tasks"][0]
        if os.geteuid() == 0 or base > 0:
            assert niceness(pgid) == {base}
            assert task["applied"]["nice"] == base and task["before"]["nice"] == start and live["relimited"] == 1
        else:  # lowering niceness needs CAP_SYS_NICE: the response says so, nothing is claimed
            assert "CAP_SYS_NICE" in task["errors"]["nice"] and live["relimited"] == 0
    finally:
        await runtime.shutdown()
        await engine.close()


def test_temp_cleanup_counts_only_what_it_removed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A file whose unlink fails stays, is not counted as removed, and keeps its directory:
    the figures say what was freed. A link is removed, never followed, never counted."""
    from core.runtimes.dispatch import remove_tree

    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "keep.bin").write_bytes(b"k" * 50)
    run = tmp_path / "run"
    (run / "sub").mkdir(parents=True)
    (run / "a.bin").write_bytes(b"a" * 100)
    (run / "sub" / "stuck.bin").write_bytes(b"s" * 1000)
    (run / "sub" / "b.bin").write_bytes(b"b" * 10)
    (run / "link").symlink_to(outside, target_is_directory=True)
    real_unlink = os.unlink

    def unlink(path, *a, **k):  # type: ignore[no-untyped-def]
        if os.fspath(path).endswith("stuck.bin"):
            raise PermissionError(1, "Operation not permitted", os.fspath(path))
        return real_unlink(path, *a, **k)

    monkeypatch.setattr(os, "unlink", unlink)
    files, size, gone = remove_tree(run)
    assert (files, size, gone) == (2, 110, False)
    assert (run / "sub" / "stuck.bin").read_bytes() == b"s" * 1000
    assert not (run / "a.bin").exists() and not (run / "link").exists()
    assert (outside / "keep.bin").exists(), "the link was not followed"
    monkeypatch.setattr(os, "unlink", real_unlink)
    assert remove_tree(run) == (1, 1000, True) and not run.exists()


def test_temp_cleanup_does_not_count_a_spare_an_agent_host_renamed_meanwhile(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An agent host renames an ended run's empty TMPDIR (its spare) to serve its next run:
    when that happens while the cleanup walks it, the directory lives on under its new
    name, so it is not counted in dirs_removed; one the cleanup removed is."""
    from core.runtimes.dispatch import remove_tree

    spare, next_run = tmp_path / "w__a-0", tmp_path / "w__b-0"
    spare.mkdir()
    real_rmdir = os.rmdir

    def rmdir(path, *a, **k):  # type: ignore[no-untyped-def]
        if os.fspath(path) == os.fspath(spare):
            os.rename(spare, next_run)  # the host, between the walk and the rmdir
        return real_rmdir(path, *a, **k)

    monkeypatch.setattr(os, "rmdir", rmdir)
    assert remove_tree(spare) == (0, 0, False)
    assert next_run.is_dir() and not spare.exists()
    monkeypatch.setattr(os, "rmdir", real_rmdir)
    assert remove_tree(next_run) == (0, 0, True) and not next_run.exists()
