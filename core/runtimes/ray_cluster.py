"""The Ray cluster this process drives, where it is, and what it can place.

:class:`RayCluster` starts a private local instance (loopback only, a short temp
directory) or joins a cluster at an address; :func:`check_address` fails at once,
before anything is created, when nothing answers there. :func:`actor_requests` and
:func:`placement_problems` say what an agent's actor asks Ray for and what the
cluster could never place (a pool's actor no node can hold, a fleet beyond its total).
"""

from __future__ import annotations

import asyncio
import contextlib
import faulthandler
import ipaddress
import logging
import os
import shutil
import socket
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import psutil
import ray
from ray._private import ray_constants
from ray._private import services as ray_services
from ray._private.authentication.authentication_token_setup import maybe_enable_token_auth_if_token_available

if TYPE_CHECKING:
    from ..models import TaskSpec, WorkflowSpec
    from ..workflow_file import WorkflowFile

SPEC_RESOURCE = "opsdeck_spec_"
TEMP_PREFIX = "opsdeck-ray-"
JOIN_PROBE_S = 5.0
JOIN_TIMEOUT_S = 120.0


@dataclass
class RayCluster:
    """This process's connection to Ray, and whether it started the cluster itself."""

    address: str | None
    started: bool = False
    connected: bool = False
    temp_dir: str | None = None
    init_s: float = 0.0
    num_cpus: int = 0

    owner: threading.Thread | None = None
    release: threading.Event = field(default_factory=threading.Event)

    @classmethod
    async def open(cls, address: str | None, num_cpus: int, resources: dict[str, float]) -> RayCluster:
        """:meth:`join` on a thread of its own that lives until :meth:`leave`, without
        blocking the event loop. Two reasons for the thread: Ray replaces the SIGTERM
        handler only when started on the main thread, and the processes of a local
        instance are tied to the thread that started them (they are killed when it ends)."""
        loop = asyncio.get_running_loop()
        ready: asyncio.Future[RayCluster] = loop.create_future()

        def settle(result: RayCluster | None, exc: BaseException | None) -> None:
            if ready.done():
                return
            if exc is not None:
                ready.set_exception(exc)
            else:
                ready.set_result(result)  # type: ignore[arg-type]

        def own() -> None:
            try:
                c = cls.join(address, num_cpus, resources)
            except BaseException as exc:  # noqa: BLE001 - crosses the thread: the awaiting coroutine re-raises it
                loop.call_soon_threadsafe(settle, None, exc)
                return
            c.owner = threading.current_thread()
            loop.call_soon_threadsafe(settle, c, None)
            c.release.wait()
            c._disconnect()

        threading.Thread(target=own, name="opsdeck-ray", daemon=True).start()
        try:
            return await asyncio.wait_for(ready, JOIN_TIMEOUT_S)
        except TimeoutError:
            raise ConnectionError(
                f"Ray did not come up within {JOIN_TIMEOUT_S:g} s at {address or 'a local instance'}"
            ) from None

    @classmethod
    def join(cls, address: str | None, num_cpus: int, resources: dict[str, float]) -> RayCluster:
        """Start a local instance (``address`` None) or join ``address`` (``auto`` or HOST:PORT).
        Blocking (seconds); :meth:`open` calls it on its own thread."""
        c = cls(address)
        if ray.is_initialized():  # this process is already a driver (tests share one): reuse it
            return c
        t0 = time.monotonic()
        # Ray's core would install its own SIGTERM handler in this process (over the
        # host's, which stops the run cleanly): the host keeps its own. The constant was
        # read when ray was imported; the variable reaches the processes Ray starts.
        os.environ["RAY_DISABLE_FAILURE_SIGNAL_HANDLER"] = "1"
        ray_constants.RAY_DISABLE_FAILURE_SIGNAL_HANDLER = True
        # ray.init enables faulthandler on sys.stderr, which under the console is Textual's
        # capture (no file descriptor): give it the real stderr first.
        if not faulthandler.is_enabled() and sys.__stderr__ is not None:
            with contextlib.suppress(ValueError, OSError):
                faulthandler.enable(file=sys.__stderr__, all_threads=False)
        if address is None:
            # A private, short temp dir (Ray's socket paths are length-limited) on loopback:
            # never joins another user's instance, never listens beyond this machine.
            _sweep_temp_dirs()
            c.temp_dir = tempfile.mkdtemp(prefix=TEMP_PREFIX, dir="/tmp")
            loopback_only()
            try:
                ray.init(
                    address="local",
                    num_cpus=num_cpus,
                    resources=resources or None,
                    include_dashboard=False,
                    _temp_dir=c.temp_dir,
                    log_to_driver=False,
                    logging_level=logging.ERROR,
                )
            except BaseException:
                shutil.rmtree(c.temp_dir, ignore_errors=True)
                raise
            c.started, c.num_cpus = True, num_cpus
        else:
            check_address(address)
            concrete = resolve_address(address)
            if is_loopback(concrete):  # a head on 127.0.0.1 serves this machine only: so does this driver
                loopback_only()
            # Ray turns its cluster-token auth on by itself only for a cluster it finds on its
            # own; for an explicit address, do what it does then (a token in ~/.ray/auth_token,
            # RAY_AUTH_MODE unset: use it).
            maybe_enable_token_auth_if_token_available(warn_if_disabled=False)
            ray.init(address=concrete, log_to_driver=False, logging_level=logging.ERROR)
        c.connected = True
        c.init_s = round(time.monotonic() - t0, 3)
        return c

    def where(self) -> str:
        if self.started:
            return f"a local Ray instance ({self.temp_dir}, {self.num_cpus} logical CPUs on {os.cpu_count()} cores)"
        return self.address or "the Ray instance this process already drives"

    def leave(self) -> None:
        """Disconnect; a cluster this process started is stopped, a joined one never is.
        Blocking: from the event loop, run it in an executor."""
        if self.owner is not None:
            self.release.set()
            self.owner.join(60.0)
            return
        self._disconnect()

    def _disconnect(self) -> None:
        if self.connected:
            ray.shutdown()
            self.connected = False
        if self.temp_dir is not None:
            shutil.rmtree(self.temp_dir, ignore_errors=True)
            self.temp_dir = None


def resolve_address(address: str) -> str:
    """``auto`` as Ray resolves it (``RAY_ADDRESS``, then the cluster this machine's
    ``ray start`` made); ConnectionError when there is none. Other addresses as given."""
    if address != "auto":
        return address
    found = ray_services.get_ray_address_from_environment("auto", None)
    if not found:
        raise ConnectionError(
            "--address auto: no Ray cluster was started on this machine (`ray start --head`) and RAY_ADDRESS is not set"
        )
    return str(found)


def is_loopback(address: str) -> bool:
    host = address.rpartition(":")[0].strip("[]")
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_address(address: str) -> None:
    """ConnectionError, saying why, unless ``address`` (``auto`` resolved) is a HOST:PORT
    that answers: fail at once, before anything is created (Ray itself retries for minutes)."""
    address = resolve_address(address)
    if "://" in address:
        return
    host, sep, port = address.rpartition(":")
    if not sep or not port.isdigit():
        raise ConnectionError(f"--address {address!r} is not auto or HOST:PORT")
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=JOIN_PROBE_S).close()
    except OSError as exc:
        raise ConnectionError(
            f"nothing answers at {address} ({exc.strerror or exc}); start the head with "
            f"`ray start --head` and pass the address it prints"
        ) from None


def _sweep_temp_dirs() -> None:
    """Remove the temp dirs of local instances whose host was killed (SIGKILL leaves
    them): ours, older than two minutes, and no live process mentions them."""
    now = time.time()
    mine = [
        d
        for d in Path("/tmp").glob(TEMP_PREFIX + "*")
        if d.is_dir() and d.stat().st_uid == os.getuid() and now - d.stat().st_mtime > 120
    ]  # not one being set up
    if not mine:
        return
    in_use: set[str] = set()
    for p in psutil.process_iter(["cmdline"]):
        line = " ".join(p.info.get("cmdline") or [])
        in_use.update(str(d) for d in mine if str(d) in line)
    for d in mine:
        if str(d) not in in_use:
            shutil.rmtree(d, ignore_errors=True)


def loopback_only() -> None:
    """A local instance serves this machine only: Ray's single-machine mode (its switch for
    platforms without cluster support) makes every process use 127.0.0.1 instead of the
    machine's network address. The variable reaches the processes Ray starts; the module
    constant was read when ray was imported, so it is set too."""
    os.environ[ray_constants.ENABLE_RAY_CLUSTERS_ENV_VAR] = "0"
    ray_constants.ENABLE_RAY_CLUSTER = False


def actor_requests(specializations: list[str], tasks: list[TaskSpec], spec_resources: set[str]) -> dict[str, Any]:
    """``num_cpus`` / ``memory`` / custom ``resources`` for an actor of a pool with these
    specializations: the most any of ``tasks`` it may run declares."""
    mine = [t for t in tasks if t.specialization in specializations]
    cpu = max((t.cpu for t in mine), default=0.0)
    mem = max((t.memory_gb for t in mine), default=0.0)
    opts: dict[str, Any] = {"num_cpus": cpu}
    if mem > 0:
        opts["memory"] = int(mem * 1024**3)
    res = {SPEC_RESOURCE + s: 0.001 for s in sorted(specializations) if SPEC_RESOURCE + s in spec_resources}
    if res:
        opts["resources"] = res
    return opts


def fleet_requests(wfile: WorkflowFile, specs: list[WorkflowSpec], declared: set[str]) -> tuple[float, float]:
    """(CPUs, memory bytes) Ray must hold for every pool's ``size`` actors at once."""
    tasks = [t for spec in specs for ph in spec.phases for t in ph.tasks]
    cpu = mem = 0.0
    for p in wfile.pools:
        want = actor_requests(list(p.specializations), tasks, declared)
        cpu += p.size * want["num_cpus"]
        mem += p.size * want.get("memory", 0)
    return cpu, mem


def placement_problems(wfile: WorkflowFile, specs: list[WorkflowSpec], nodes: list[dict[str, Any]]) -> list[str]:
    """What Ray could never place: a pool's actor that no live node can hold, or the
    fleet beyond the cluster's total (the actors would wait forever)."""
    alive = [n.get("Resources") or {} for n in nodes if n.get("Alive")]
    declared = {k for r in alive for k in r if k.startswith(SPEC_RESOURCE)}
    tasks = [t for spec in specs for ph in spec.phases for t in ph.tasks]
    problems = []
    cpu, mem = fleet_requests(wfile, specs, declared)
    have_cpu, have_mem = sum(r.get("CPU", 0.0) for r in alive), sum(r.get("memory", 0.0) for r in alive)
    if cpu > have_cpu + 1e-9 or mem > have_mem:
        problems.append(
            f"pools: key 'size': the pools' {sum(p.size for p in wfile.pools)} agents need {cpu:g} CPU and "
            f"{mem / 1024**3:.1f} GB memory together (each agent: the most its pool's tasks declare); "
            f"the Ray cluster has {have_cpu:g} CPU and {have_mem / 1024**3:.1f} GB"
        )
    for i, p in enumerate(wfile.pools):
        want = actor_requests(list(p.specializations), tasks, declared)
        need = {"CPU": want["num_cpus"], "memory": want.get("memory", 0), **want.get("resources", {})}
        if not any(all(r.get(k, 0.0) >= v for k, v in need.items() if v) for r in alive):
            biggest = max(alive, key=lambda r: r.get("CPU", 0.0), default={})
            problems.append(
                f"pools[{i}] {p.name!r}: its agents need {want['num_cpus']:g} CPU, "
                f"{want.get('memory', 0) / 1024**3:g} GB memory{' and ' + ', '.join(want['resources']) if want.get('resources') else ''} "
                f"(the most its tasks declare) and no Ray node has that much (the largest: {biggest.get('CPU', 0.0):g} CPU, "
                f"{biggest.get('memory', 0.0) / 1024**3:.1f} GB)"
            )
    return problems
