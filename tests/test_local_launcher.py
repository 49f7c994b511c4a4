"""Agent hosts forked by one launcher (:mod:`core.runtimes.zygote`), not one interpreter each.

Each forked host is what ``python -m core.runtimes.agent_host`` was: its own session,
its log as output, the console's cwd. The launcher reaps it and reports how it ended
(a host killed with SIGKILL is reported so). A launcher that cannot start, dies, or
does not answer leaves the hosts to start as processes of their own, with a message:
nothing waits on it for good.
"""

from __future__ import annotations

import os
import signal
from pathlib import Path

import psutil
import pytest

from core.runtimes import agent_host, launching, local_hosts, zygote
from core.runtimes.host_launcher import HostLauncher
from core.runtimes.zygote import HOST_NAME

from .local_harness import drive, header, open_text, task_toml, wf_status, workflow_toml

pytestmark = pytest.mark.slow


def two_agents(*commands: list[str]) -> str:
    """A workflow file of one phase on two agents, a task per command (``t0``, ``t1``...)."""
    tasks = [task_toml(f"t{i}", c, "shell") for i, c in enumerate(commands)]
    return header() + workflow_toml("w", *tasks, phase="p", allocation={"cpu_cores": 1, "memory_gb": 1, "agents": 2})


TWO_TASKS = two_agents(["true"], ["true"])
LONG = two_agents(["sleep", "30"])


async def test_hosts_are_forked_by_the_launcher_and_a_sigkill_is_reported(tmp_path: Path) -> None:
    engine, runtime, rec = await open_text(tmp_path / "r.db", LONG, tmp_path)
    try:
        await drive(engine, lambda: rec.of("TASK_STARTED"))
        launcher = runtime.local.launcher.popen
        assert launcher is not None and launcher.poll() is None
        assert "core.runtimes.zygote" in psutil.Process(launcher.pid).cmdline(), "the launcher keeps its own"
        pids = runtime.host_pids()
        assert len(pids) == 2
        for agent_id, pid in pids.items():
            p = psutil.Process(pid)
            assert p.ppid() == launcher.pid and p.name() == HOST_NAME
            # ps names the agent, not the launcher's command line 20 times over:
            title = " ".join(p.cmdline()).strip()
            assert title.startswith(f"{HOST_NAME} --agent {agent_id} --socket "), title
            assert "core.runtimes.zygote" not in title
            assert os.getsid(pid) == pid  # its own session: it outlives the console
            assert p.cwd() == os.getcwd()
            for fd in (1, 2):
                assert os.readlink(f"/proc/{pid}/fd/{fd}") == str(runtime.run_dir / f"{agent_id}.log")
            assert sorted(os.listdir(f"/proc/{pid}/fd"))[:3] == ["0", "1", "2"]
        agent = engine.state.tasks["w/t0"].agent
        assert agent is not None
        os.kill(pids[agent], signal.SIGKILL)
        await drive(engine, lambda: rec.of("AGENT_ERROR"), timeout=10)
        err = rec.of("AGENT_ERROR")[0]
        assert err.data["agent"] == agent and "killed by SIGKILL" in err.data["error"], err.data
    finally:
        await runtime.shutdown()
        await engine.close()
    assert launcher.poll() is not None, "the launcher ends with the runtime"
    assert not [p for p in pids.values() if psutil.pid_exists(p) and psutil.Process(p).status() != "zombie"]


async def test_a_launcher_that_cannot_start_leaves_hosts_to_start_on_their_own(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    opened = launching.open_private

    def refuse(path: Path, append: bool = True) -> int:  # the launcher's log only
        if path.name == launching.LAUNCHER_LOG:
            raise OSError(28, "No space left on device")
        return opened(path, append)

    monkeypatch.setattr(launching, "open_private", refuse)
    engine, runtime, _ = await open_text(tmp_path / "r.db", TWO_TASKS, tmp_path)
    try:
        await drive(engine, lambda: wf_status(engine, "w") == "completed", timeout=30)
        assert runtime.local.launcher.popen is None
        assert all(h.popen is not None and h.launched is None for h in runtime.hosts.values())
    finally:
        await runtime.shutdown()
        await engine.close()
    assert "the agent host launcher could not start" in capsys.readouterr().err


async def test_a_launcher_that_does_not_answer_is_ended_and_hosts_start_on_their_own(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A stopped launcher answers nothing: after ``LAUNCH_WAIT_S`` it is killed and
    the hosts it was asked for start as processes of their own."""
    start = HostLauncher.start

    def start_stopped(self: HostLauncher) -> None:
        start(self)
        assert self.popen is not None
        os.kill(self.popen.pid, signal.SIGSTOP)

    monkeypatch.setattr(HostLauncher, "start", start_stopped)
    monkeypatch.setattr(local_hosts, "LAUNCH_WAIT_S", 1.0)
    engine, runtime, _ = await open_text(tmp_path / "r.db", TWO_TASKS, tmp_path)
    try:
        await drive(engine, lambda: wf_status(engine, "w") == "completed", timeout=30)
        launcher = runtime.local.launcher.popen
        assert launcher is not None and launcher.returncode == -signal.SIGKILL
        assert all(h.popen is not None for h in runtime.hosts.values())
    finally:
        await runtime.shutdown()
        await engine.close()
    err = capsys.readouterr().err
    assert "did not answer in 1s" in err and "its host starts as a process of its own" in err


async def test_a_launcher_that_dies_leaves_later_hosts_to_start_on_their_own(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Hosts forked before the launcher died live on; a replacement is spawned."""
    engine, runtime, rec = await open_text(tmp_path / "r.db", LONG, tmp_path)
    try:
        await drive(engine, lambda: rec.of("TASK_STARTED"))
        launcher = runtime.local.launcher
        assert launcher.popen is not None
        launcher.popen.kill()
        await drive(engine, lambda: launcher.broken is not None, timeout=10)
        before = runtime.host_pids()
        assert all(psutil.Process(p).status() != "zombie" for p in before.values())
        agent = engine.state.tasks["w/t0"].agent
        assert agent is not None
        mark = len(rec.of("AGENT_ALLOCATED"))
        runtime.fail_agent(agent)
        await drive(engine, lambda: len(rec.of("AGENT_ALLOCATED")) > mark, timeout=20)
        new = runtime.hosts[rec.of("AGENT_ALLOCATED")[-1].data["agent"]]  # the dead agent's replacement
        assert new.popen is not None and new.launched is None
        assert "core.runtimes.agent_host" in psutil.Process(new.popen.pid).cmdline()
        assert all(psutil.Process(p).status() != "zombie" for a, p in before.items() if a != agent)
    finally:
        await runtime.shutdown()
        await engine.close()
    assert "the agent host launcher exited (killed by SIGKILL)" in capsys.readouterr().err


async def test_a_host_that_can_start_neither_way_fails_its_agent_and_the_run_goes_on(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The launcher refuses a host whose log cannot be opened; the console's own start of
    it then fails the same way. That is said, and the agent fails as a host that died
    (its task goes back, a replacement takes its place), not left waiting for a host
    that does not exist."""
    run_dir = tmp_path / "r.db.agents"
    run_dir.mkdir(mode=0o700)
    (run_dir / "agent_001.log").mkdir()  # a log that cannot be opened
    engine, runtime, rec = await open_text(tmp_path / "r.db", TWO_TASKS, tmp_path)
    try:
        await drive(engine, lambda: wf_status(engine, "w") == "completed", timeout=30)
        errors = [e.data for e in rec.of("AGENT_ERROR") if e.data["agent"] == "agent_001"]
        assert errors and "could not start" in errors[0]["error"], errors
        assert runtime.hosts["agent_001"].dead
    finally:
        await runtime.shutdown()
        await engine.close()
    err = capsys.readouterr().err
    assert "agent agent_001: its host could not start" in err and "starts as a process of its own" not in err, err


def test_the_launchers_warm_up_parses_a_hosts_options_and_leaves_no_loop_open() -> None:
    """The launcher parses a host's options and makes an event loop once before it forks
    (each forked host then finds both warm); a warm-up that stops being a valid host
    command line would end the launcher at its start (and every host would start as an
    interpreter of its own). Its loop is closed: no selector or self-pipe descriptor is
    left in the launcher (fails with the close() left out)."""
    before = set(os.listdir("/proc/self/fd"))
    zygote.warm_up()
    assert set(os.listdir("/proc/self/fd")) == before
    with pytest.raises(SystemExit):  # the options it must give are required: without one, refused
        agent_host.OPTIONS.parse_args(["--socket", "-", "--secret-file", "-"])
