"""The local runtime's agent hosts: processes on this machine, reached over unix sockets.

Each agent is an :mod:`agent host <core.runtimes.agent_host>` process in its own
session, forked by the run's :mod:`launcher <.zygote>` (one interpreter that imported
the host once; a process of its own when the launcher cannot serve), reached over a
unix socket in the run's private directory (0700). Every connection is authenticated
both ways (:mod:`.handshake`) before the console sends anything. :class:`LocalHosts` starts (or adopts) the hosts, reads their reports
(:meth:`LocalHosts.connection`, which hands each to :mod:`.reports`), and samples
them with psutil; :class:`LocalLinks` are the primitives the shared parts use.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import stat
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil

from ..private import PrivateError, socket_path
from .adoption import Adoption, kill_verified, killpg_verified
from .fleet import Fleet, HostRecord
from .handshake import SECRET_FILE, ChannelError, console_connect
from .host_launcher import Launched, exit_status, launcher_for, until
from .launching import start_module
from .limits import Mechanisms
from .reports import Reports
from .sampler import Sampler, process_ended, same_process
from .supervise import Supervisor
from .wire import CommandReader, encode

CONNECT_TIMEOUT_S = 15.0
"""After this long without an answer on its socket, a host's start is judged by the CPU it used."""
CONNECT_CPU_S = 10.0
"""CPU seconds a host may use without answering (its start, imports included, takes well under
one): past them it is stuck. A host that waits for the CPU on a loaded machine uses none, and is
not taken for a dead one: its replacement would start as slowly (a cascade of our own making)."""
CONNECT_WALL_S = 120.0
"""Wall-clock seconds a host may take to answer whatever its CPU (one asleep for good uses none)."""
LAUNCH_WAIT_S = 60.0
"""Wall-clock seconds the launcher may take to fork a host (its own start included) before
it is taken for stuck: killed, and the hosts start as processes of their own."""
EXIT_REPORT_S = 2.0
"""How long a host's end waits for the launcher's report of its exit status (it reaps at once)."""


async def hear_pending_reports() -> None:
    """Let the connections read the reports that arrived while this task ran without
    yielding (psutil scanning /proc, which on a loaded machine can take longer than a
    heartbeat). Two passes of the loop: one for the sockets' callbacks to feed their
    readers, one for the reading tasks to run; a third for margin. Without it the engine
    would judge liveness on reports still unread in the sockets: a busy console taken for
    silent agents."""
    for _ in range(3):
        await asyncio.sleep(0)


@dataclass
class ProcessHost(HostRecord):
    """An agent host process this console forked through its launcher (``launched``),
    started as a process of its own (``popen``) or adopted, and its socket."""

    popen: subprocess.Popen[bytes] | None = None
    launched: Launched | None = None
    writer: asyncio.StreamWriter | None = None


class LocalLinks:
    """A host process: signals verified by create time, a socket for commands."""

    def __init__(self, fleet: Fleet[ProcessHost], adoption: Adoption) -> None:
        self.fleet = fleet
        self.adoption = adoption

    def ready(self, h: ProcessHost) -> bool:
        return h.writer is not None and not h.writer.is_closing()

    def deliver(self, h: ProcessHost, batch: list[dict[str, Any]]) -> bool:
        assert h.writer is not None
        try:
            h.writer.write(b"".join(encode(m) for m in batch))
        except (ConnectionError, RuntimeError):
            return False
        return True

    def alive(self, h: ProcessHost) -> bool:
        if h.exited:
            return False  # its end was seen (:meth:`ended`): not read again
        if h.popen is not None:
            return h.popen.poll() is None
        if h.launched is not None:
            return h.launched.alive()
        return h.pid is not None and h.create_time is not None and same_process(h.pid, h.create_time)

    def kill(self, h: ProcessHost) -> None:
        """SIGKILL a host and its task group, both verified by create time (its end: :meth:`ended`)."""
        self.kill_task_group(h)
        if h.popen is not None:
            with contextlib.suppress(OSError):
                h.popen.kill()
        elif h.launched is not None:
            h.launched.kill()
        elif h.pid and h.create_time:
            kill_verified(h.pid, h.create_time, signal.SIGKILL)

    def returncode(self, h: ProcessHost) -> int | None:
        """How the host ended as its parent saw it (this console, or the launcher), None if unknown."""
        if h.popen is not None:
            return h.popen.poll()
        return h.launched.returncode if h.launched is not None else None

    def kill_task_group(self, h: ProcessHost) -> None:
        killpg_verified(h.task_pgid, h.task_create_time)

    def measurable(self, h: ProcessHost) -> bool:
        return True  # every local host's tasks run on this machine

    def cpu_s(self, h: ProcessHost) -> float | None:
        """CPU seconds the host process has used (None when it cannot be read: gone, or
        a pid this console did not start and cannot verify by create time)."""
        try:
            if h.popen is not None:
                proc = psutil.Process(h.popen.pid)  # our unreaped child: the pid is still its
            elif h.pid and h.create_time and same_process(h.pid, h.create_time):
                proc = psutil.Process(h.pid)
            else:
                return None
            t = proc.cpu_times()
        except psutil.Error:
            return None
        return t.user + t.system

    def save(self, h: ProcessHost) -> None:
        """The host's ``processes`` row, signed with the run's MAC."""
        if h.pid is None or h.create_time is None:
            return
        info: dict[str, Any] = {"address": h.address, "task_pgid": h.task_pgid, "task_create_time": h.task_create_time}
        info["mac"] = self.adoption.row_mac(h.agent, h.pid, h.create_time, info)
        self.fleet.save_row(h.agent, h.pid, h.create_time, info)

    def close(self, h: ProcessHost) -> None:
        if h.popen is not None:
            h.popen.poll()
        if h.writer is not None:
            h.writer.close()
            h.writer = None

    def release(self, h: ProcessHost) -> None:
        """At shutdown, once the host's end was waited for: reaped if it ended, and the socket a killed
        host could not remove (one asked to exit removes its own) removed."""
        if not self.alive(h):  # which reaps a child of ours that ended
            with contextlib.suppress(OSError):
                if stat.S_ISSOCK(os.lstat(h.address).st_mode):  # in our 0700 run directory
                    os.unlink(h.address)

    async def ended(self, h: ProcessHost, timeout: float) -> bool:
        """Wait for the host process to end (its pidfd); one not yet forked, for the launcher's answer first
        (a host killed before its pid was known is killed then). An end seen (``exited``) is final."""
        if h.exited:
            return True
        deadline = time.monotonic() + timeout
        launched = h.launched
        if launched is not None:
            await until(launched.started, timeout)
        pid: int | None
        ct: float | None
        if h.popen is not None:
            pid, ct = h.popen.pid, None  # our unreaped child: its pid is its own until reaped
        elif launched is not None:
            if launched.error is not None or launched.returncode is not None:
                return True  # never forked, or reaped by the launcher
            pid, ct = launched.pid, launched.create_time
            if pid is None or ct is None:
                return False  # the launcher did not answer: the host may run, unknown
        else:
            pid, ct = h.pid, h.create_time
            if pid is None or ct is None:
                return True  # adopted hosts always have both
        h.exited = await process_ended(pid, ct, max(0.0, deadline - time.monotonic()))
        if h.popen is not None:
            h.popen.poll()
        return h.exited


class LocalHosts:
    """Starting, adopting, connecting to and sampling the agent host processes."""

    def __init__(
        self,
        fleet: Fleet[ProcessHost],
        links: LocalLinks,
        supervisor: Supervisor[ProcessHost],
        reports: Reports[ProcessHost],
        run_dir: Path,
        mechanisms: Mechanisms,
        sampler: Sampler,
    ) -> None:
        self.fleet = fleet
        self.links = links
        self.adoption = links.adoption
        self.supervisor = supervisor
        self.reports = reports
        self.run_dir = run_dir
        self.mechanisms = mechanisms
        self.sampler = sampler
        self.launcher = launcher_for(run_dir)

    # -- starting ---------------------------------------------------------------------
    def address(self, agent_id: str) -> str:
        """A path socket in a 0700 directory of ours (never an abstract socket)."""
        return str(socket_path(self.run_dir, f"{agent_id}.sock"))

    def spawn(self, agent_id: str) -> None:
        """Adopt the agent's host left by a previous console, or start one."""
        adopt = self.adoption.adoptable.pop(agent_id, None)
        if adopt is not None:
            pid, ct, info = adopt
            stored = info.get("address")
            address = stored if isinstance(stored, str) and not stored.startswith("@") else self.address(agent_id)
            h = ProcessHost(
                agent_id,
                address,
                pid=pid,
                create_time=ct,
                task_pgid=info.get("task_pgid"),
                task_create_time=info.get("task_create_time"),
            )
            self.fleet.adopted.append(agent_id)
        else:
            h = ProcessHost(agent_id, self.address(agent_id), started=True)
            self.start_host(h)
        self.supervisor.replace(self.fleet.hosts.get(agent_id))
        self.fleet.hosts[agent_id] = h
        h.conn = asyncio.get_running_loop().create_task(self.connection(h))

    def start_host(self, h: ProcessHost) -> None:
        """Have the launcher fork the agent host (its pid comes with the launcher's
        answer: :meth:`forked`), or, when the launcher cannot serve, spawn it."""
        launcher = self.launcher
        self.start_launcher()
        h.spawned_at = time.monotonic()
        if launcher.usable:
            h.launched = launcher.spawn(self.host_argv(h), self.run_dir / f"{h.agent}.log")
        else:
            self.spawn_process(h)

    def start_launcher(self) -> None:
        """Start the hosts' launcher (once): with the first host, or earlier (its start,
        an interpreter importing the host, then overlaps the console's)."""
        launcher = self.launcher
        if launcher.popen is not None or launcher.broken is not None:
            return
        launcher.start()
        if launcher.broken is not None:
            print(f"opsdeck: {launcher.broken}; agent hosts start as processes of their own", file=sys.stderr)

    def host_argv(self, h: ProcessHost) -> list[str]:
        """The agent host's options (:func:`.agent_host.main`)."""
        m, timing = self.mechanisms, self.fleet.timing
        argv = ["--agent", h.agent, "--socket", h.address, "--secret-file", str(self.run_dir / SECRET_FILE)]
        argv += ["--heartbeat", str(timing.heartbeat_s), "--grace", str(timing.stop_grace_s)]
        argv += ["--orphan", str(timing.orphan_s), "--memory-mechanism", m.memory, "--cpu-mechanism", m.cpu]
        argv += ["--output-dir", str(self.run_dir / "output" / h.agent)]
        return argv + (["--cgroup", m.cgroup_dir] if m.cgroup_dir else [])

    def spawn_process(self, h: ProcessHost) -> None:
        """Spawn the agent host as a process of its own (its own session: it outlives a killed console)."""
        h.popen = start_module(
            "core.runtimes.agent_host", self.host_argv(h), self.run_dir / f"{h.agent}.log", start_new_session=True
        )
        h.pid = h.popen.pid
        h.spawned_at = time.monotonic()
        try:
            h.create_time = psutil.Process(h.pid).create_time()
        except psutil.Error:
            h.create_time = None
        self.links.save(h)

    async def forked(self, h: ProcessHost, launched: Launched) -> None:
        """Wait for the launcher's answer (the host is starting meanwhile), then record
        the host's pid and row; refused (the launcher is gone or stuck): spawn it."""
        sink, since = self.fleet.sink, time.monotonic()
        while not launched.started.is_set():
            if not await until(launched.started, self.fleet.timing.heartbeat_s / 2):
                if sink is not None:
                    sink.agent_heartbeat(h.agent)
                if time.monotonic() - since > LAUNCH_WAIT_S:
                    self.launcher.abandon(f"the agent host launcher did not answer in {LAUNCH_WAIT_S:.0f}s")
        if h.dead or launched.kill_on_start:
            return  # ended before its pid was known: nothing to record
        if launched.error is not None:
            if self.launcher.closing:
                return  # refused as the run ends: not started at all
            h.launched = None
            try:
                self.spawn_process(h)
            except (OSError, PrivateError, subprocess.SubprocessError) as exc:
                # Failed as the launcher did: the agent fails as a host that died (its task goes back).
                print(
                    f"opsdeck: agent {h.agent}: its host could not start ({launched.error}; then {exc})",
                    file=sys.stderr,
                )
                self.died(h, f"agent process could not start: {exc}")
                return
            print(
                f"opsdeck: agent {h.agent}: {launched.error}; its host starts as a process of its own", file=sys.stderr
            )
            return
        h.pid, h.create_time = launched.pid, launched.create_time
        self.links.save(h)

    async def close(self) -> None:
        """After the shutdown: end the launcher (hosts it forked live on in their sessions)."""
        await self.launcher.close()

    async def ended(self, h: ProcessHost, reason: str) -> None:
        """:meth:`died`, once the launcher has reported how the host ended (it reaps it at once)."""
        if h.launched is not None and not h.launched.reported.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(h.launched.reported.wait(), EXIT_REPORT_S)
        self.died(h, reason)

    def died(self, h: ProcessHost, reason: str) -> None:
        """The host process ended: the reason says how (exit status or signal)."""
        how = exit_status(self.links.returncode(h))
        self.supervisor.died(h, reason if how is None else f"{reason} ({how})")

    # -- the connection: where a host's reports are read ---------------------------------
    async def connection(self, h: ProcessHost) -> None:
        """Connect (with retries while the host starts), read its reports, notice its end."""
        fleet, links = self.fleet, self.links
        if h.launched is not None and h.pid is None:
            await self.forked(h, h.launched)
        started, judged, cpu0, cpu_read = time.monotonic(), 0.0, None, False
        while not h.dead:
            try:
                reader, writer = await self.connect(h)
            except ChannelError as exc:
                # Someone else holds the name, or a process that cannot prove it is our
                # host: send it nothing, fail the agent loudly, and do not retry there.
                self.adoption.security_failures.append(str(exc))
                print(f"opsdeck: agent {h.agent}: {exc}", file=sys.stderr, flush=True)
                self.died(h, f"agent socket refused: {exc}")
                return
            except OSError:
                if not links.alive(h):
                    await self.ended(h, "agent process exited")
                    return
                if not cpu_read:  # a start is judged by the CPU it uses from its first refusal on
                    cpu0, cpu_read = links.cpu_s(h), True
                waited = time.monotonic() - started
                if waited > CONNECT_TIMEOUT_S and waited - judged >= 1.0:
                    judged = waited
                    stuck = self.stuck_starting(h, waited, cpu0)
                    if stuck is not None:
                        self.died(h, stuck)
                        return
                if not h.connected_once and fleet.sink is not None:
                    # Still starting (alive, not listening yet): starting, not silent, as a
                    # Ray actor being placed is (a loaded machine takes seconds to start Python).
                    fleet.sink.agent_heartbeat(h.agent)
                await asyncio.sleep(0.02)
                continue
            h.writer = writer
            fleet.poke()  # send what waited for the connection
            with contextlib.suppress(ConnectionError):  # a write to it failed: connect again (hello)
                await self.hear(h, reader)
            if h.writer is writer:
                h.writer = None
            writer.close()
            if h.dead or fleet.closing:
                return
            if h.retiring and await links.ended(h, 0.5):
                self.supervisor.gone(h)
                return
            if not links.alive(h):
                await self.ended(h, "agent process died")
                return
            h.lost = True
            started, judged, cpu_read = time.monotonic(), 0.0, False
            await asyncio.sleep(0.05)

    async def hear(self, h: ProcessHost, reader: CommandReader) -> None:
        """Apply the host's reports as they arrive, until its connection ends. Each is
        framed and applied from the loop's read callback (:class:`~.wire.CommandReader`):
        no future, task step or extra loop pass per report. A report that is not an
        object, or that raises ValueError (a value it cannot read), is skipped and said
        on stderr (connecting again would only read it again, with the host's hello); any
        other exception ends the reading with it (a ConnectionError: :meth:`connection`
        connects again; others end its task)."""
        ended: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        on_report = self.reports.on_report

        def hand(msg: Any) -> None:
            try:
                if type(msg) is not dict:
                    raise ValueError(f"not a JSON object: {type(msg).__name__}")
                on_report(h, msg)
            except ValueError as exc:
                print(f"opsdeck: agent {h.agent}: a report skipped: {exc!r}", file=sys.stderr, flush=True)
            except Exception as exc:  # noqa: BLE001 - raised here it would end in the transport, not this task
                reader.drop()
                if not ended.done():
                    ended.set_exception(exc)

        def at_end() -> None:
            if not ended.done():
                ended.set_result(None)

        try:
            reader.deliver(hand, at_end)
            await ended
        finally:
            reader.drop()  # a cancelled connection applies nothing more

    async def connect(self, h: ProcessHost) -> tuple[CommandReader, asyncio.StreamWriter]:
        """An authenticated connection (:func:`console_connect`). A host never connected
        yet is starting while its handshake is pending too, as while it is not yet
        listening: on a loaded machine its answer waits for the CPU, and the engine would
        otherwise take it for a silent agent. One the launcher forked is tried once it listens."""
        if h.launched is not None:  # else refused until it does, and tried again 20 ms later
            await until(h.launched.listening, self.fleet.timing.heartbeat_s / 2)
        attempt = asyncio.ensure_future(console_connect(h.address, self.adoption.secret, expect_pid=h.pid, framed=True))
        sink = self.fleet.sink
        try:
            if not h.connected_once and sink is not None:
                while not (await asyncio.wait({attempt}, timeout=self.fleet.timing.heartbeat_s / 2))[0]:
                    sink.agent_heartbeat(h.agent)
            reader, writer = await attempt
            assert isinstance(reader, CommandReader)
            return reader, writer
        finally:
            attempt.cancel()  # this connection's end (a shutdown) ends the attempt too; no-op once done

    def stuck_starting(self, h: ProcessHost, waited: float, cpu0: float | None) -> str | None:
        """Why a live host that has not answered on its socket for ``waited`` seconds is
        taken for stuck (then it is killed and replaced), or None while it may still be
        starting: it used under ``CONNECT_CPU_S`` of CPU since it first refused (on a loaded
        machine a start waits for the CPU) and the wait is under ``CONNECT_WALL_S``."""
        cpu = self.links.cpu_s(h)
        used = None if cpu is None or cpu0 is None else cpu - cpu0
        if used is None:
            return f"agent process did not answer on its socket in {waited:.0f}s (its CPU time unreadable)"
        if used > CONNECT_CPU_S or waited > CONNECT_WALL_S:
            return f"agent process did not answer on its socket in {waited:.0f}s ({used:.1f} CPU s used meanwhile)"
        return None

    # -- sampling ---------------------------------------------------------------------------
    async def sample_loop(self) -> None:
        """psutil every ``sample_s``: each agent's tree, then the machine (detector hooks run there)."""
        fleet = self.fleet
        while True:
            await asyncio.sleep(fleet.timing.sample_s)
            sink = fleet.sink
            if sink is None:
                continue
            # A retiring host was told to exit: its tree is not measured (one exiting reads 0 MB resident
            # and still "running", not yet a zombie: a figure of nothing that ran); its end is seen on its connection.
            live = [h for h in fleet.hosts.values() if not h.dead and not h.retiring and h.pid is not None]
            usage = self.sampler.trees({h.agent: (h.pid, h.create_time) for h in live if h.pid is not None})
            await hear_pending_reports()
            for h in live:
                if h.dead:
                    continue
                u = usage.get(h.agent)
                if not self.links.alive(h):
                    if not h.retiring:
                        await self.ended(h, "agent process gone")
                    continue
                if u is None:
                    continue  # alive but unreadable now (a /proc read failed): not measured, not dead
                if time.monotonic() - h.last_report <= 2 * fleet.timing.heartbeat_s:
                    # A sample is liveness to the engine: only for a host that still talks
                    # (a stopped or hung host is measurable but silent).
                    sink.usage(h.agent, u.cpu_pct, u.rss_mb)
            cpu, mem = self.sampler.system()
            sink.system_usage(cpu, mem)
            self.sampler.forget_dead()

    # -- real faults (drills on real processes) ------------------------------------------
    def fail_agent(self, agent_id: str) -> None:
        """SIGKILL the agent's host process (verified by create time); its death is
        then noticed the way any crash is (the connection closes)."""
        h = self.fleet.hosts.get(agent_id)
        if h is not None and not h.dead and h.pid and h.create_time:
            kill_verified(h.pid, h.create_time, signal.SIGKILL)

    def signal_hosts(self, agent_ids: list[str] | None, sig: int) -> None:
        """``sig`` to the hosts of ``agent_ids`` (None: every host), verified by create time."""
        for a, h in self.fleet.hosts.items():
            if (agent_ids is None or a in agent_ids) and not h.dead and h.pid and h.create_time:
                kill_verified(h.pid, h.create_time, sig)
