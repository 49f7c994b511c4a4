"""The replica an attached console reads: folded like Engine.load, kept current by
tailing the writer's rows, with the writer's gauges from the metrics table."""

from __future__ import annotations

from core.config import Config
from core.host.replica import Replica, ReplicaGap
from core.session import open_sim


async def test_replica_follows_the_writer(tmp_path):
    db = tmp_path / "r.db"
    writer = await open_sim(db, Config(), seed=3, demo=True)
    await writer.advance(300)
    await writer.checkpoint("manual", "mid")
    await writer.advance(300)
    await writer.flush()
    rep = await Replica.open(db, Config())
    try:
        assert rep.seq == writer.state.seq
        assert rep.engine.state.state_hash() == writer.state.state_hash()
        assert rep.engine.telemetry.get("cpu_pct").values(), "system gauges come back from the store"
        busy = [a.id for a in writer.state.agents.values() if a.current_task]
        assert busy and all(a in rep.engine.telemetry.agent_usage for a in busy)
        before_cpu = len(rep.engine.telemetry.get("cpu_pct").points)
        await writer.advance(120)
        await writer.flush()
        got = await rep.catch_up()
        assert got and got[-1].seq == writer.state.seq == rep.seq
        assert rep.engine.state.state_hash() == writer.state.state_hash()
        assert await rep.refresh_telemetry() > 0
        assert len(rep.engine.telemetry.get("cpu_pct").points) > before_cpu
        assert rep.engine.telemetry.agent_usage == {
            k: v for k, v in writer.telemetry.agent_usage.items() if k in rep.engine.telemetry.agent_usage
        }
        # Events arrive in order or not at all: a gap is refused, an old one ignored.
        last = got[-1]
        assert rep.apply(last) is False
        await writer.advance(60)
        await writer.flush()
        ahead = (await writer.store.read_events(since=rep.seq + 1, limit=1))[0]
        try:
            rep.apply(ahead)
            raise AssertionError("a gap must be refused")
        except ReplicaGap:
            pass
        assert rep.seq == last.seq
    finally:
        await rep.close()
        await writer.close()
