"""Opening a session: a database, the config, a clock and a runtime, wired together.

The console, the headless commands and the drills all start the engine this way,
so a restart on the same database always rebuilds the same projection.
"""

from __future__ import annotations

from pathlib import Path

from .clock import VirtualClock
from .config import Config
from .demo import RecurringDemo, build_demo
from .engine import Engine
from .runtimes.sim import SimRuntime


def sim_runtime(engine_config: Config, clock: VirtualClock, seed: int) -> SimRuntime:
    return SimRuntime(
        clock,
        seed=seed,
        heartbeat_s=engine_config.intervals.heartbeat_s,
        sample_s=engine_config.intervals.sample_s,
        cpu_capacity=engine_config.capacity.cpu_cores,
        memory_capacity_gb=engine_config.capacity.memory_gb,
    )


async def open_sim(
    db: str | Path,
    config: Config | None = None,
    seed: int = 0,
    demo: bool = False,
    readonly: bool = False,
    duration_scale: float = 1.0,
    recurring: bool = False,
) -> Engine:
    """Open ``db`` on the simulated runtime; build the demo fleet if it is empty.

    With ``recurring`` a new demo fleet resubmits each workflow after it completes
    (the console's demo); a database built that way keeps doing so when reopened."""
    config = config or Config()
    clock = VirtualClock()
    engine = await Engine.open(db, config=config, clock=clock, readonly=readonly)
    stored_seed = engine.state.settings.get("sim_seed")
    if stored_seed is not None:
        seed = int(stored_seed)
    if readonly:
        return engine
    runtime = sim_runtime(config, clock, seed)
    engine.attach_runtime(runtime)
    if demo and engine.state.seq == 0:
        engine.set_setting("sim_seed", seed)
        if recurring:
            engine.set_setting("demo_recurring", True)
        build_demo(engine, seed=seed, duration_scale=duration_scale)
        await engine.flush()
    if engine.state.settings.get("demo_recurring"):
        RecurringDemo(engine)
    return engine


def memory_sim(config: Config | None = None, seed: int = 0, demo: bool = True, duration_scale: float = 1.0) -> Engine:
    """An engine with no database: for property tests and benchmarks."""
    config = config or Config()
    clock = VirtualClock()
    engine = Engine(config=config, clock=clock)
    engine.attach_runtime(sim_runtime(config, clock, seed))
    if demo:
        engine.set_setting("sim_seed", seed)
        build_demo(engine, seed=seed, duration_scale=duration_scale)
    return engine
