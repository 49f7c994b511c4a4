"""Metrics benchmark: what ``GET /metrics`` costs, against baselines in the same run.

1. The engine's hot path: the demo fleet run for ``--hours`` simulated hours with the
   metrics' event feed on (commit counting, task timings) against the same run
   without it (same seed, same events).
2. A scrape: building the text of one scrape from the projection and telemetry,
   against prometheus-client's own metric objects holding the same samples
   (what a second bookkeeping, updated at every event, would still pay per scrape).
3. Seeding the counts from the store when a host starts.

    .venv/bin/python bench/metrics_bench.py [--hours 12] [--repeats 3] [--scrapes 200]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram  # noqa: E402
from prometheus_client.exposition import generate_latest  # noqa: E402
from prometheus_client.parser import text_string_to_metric_families  # noqa: E402

from core.engine import Engine  # noqa: E402
from core.host.door import start_counting  # noqa: E402
from core.host.metrics import EngineCollector, exposition  # noqa: E402
from core.session import open_sim  # noqa: E402


async def run_fleet(path: Path, hours: float, counting: bool) -> tuple[Engine, float]:
    eng = await open_sim(path, demo=True, recurring=True)
    if counting:
        await start_counting(eng)
    t0 = time.process_time()  # CPU seconds of the process (all threads): steadier than wall time on a shared machine
    await eng.advance(hours * 3600)
    await eng.flush()
    return eng, time.process_time() - t0


def native_registry(text: str) -> CollectorRegistry:
    """prometheus-client's own metrics holding the samples of one of our scrapes."""
    reg = CollectorRegistry(auto_describe=False)
    for fam in text_string_to_metric_families(text):
        if fam.name.startswith("process_") or fam.type == "info":
            continue
        labels = sorted({k for s in fam.samples for k in s.labels if k != "le"})
        if fam.type == "histogram":
            bounds = sorted(
                {float(s.labels["le"]) for s in fam.samples if s.name.endswith("_bucket") and s.labels["le"] != "+Inf"}
            )
            h = Histogram(fam.name, fam.documentation, labels, registry=reg, buckets=bounds)
            for s in fam.samples:
                if s.name.endswith("_sum"):
                    (h.labels(*[s.labels[k] for k in labels]) if labels else h).observe(s.value)
        elif fam.type == "counter":
            c = Counter(fam.name, fam.documentation, labels, registry=reg)
            for s in fam.samples:
                if s.name.endswith("_total"):
                    (c.labels(*[s.labels[k] for k in labels]) if labels else c).inc(s.value)
        else:
            g = Gauge(fam.name, fam.documentation, labels, registry=reg)
            for s in fam.samples:
                (g.labels(*[s.labels[k] for k in labels]) if labels else g).set(s.value)
    return reg


def timed_pair(a, b, n: int) -> tuple[float, float]:  # type: ignore[no-untyped-def]
    """Median CPU seconds of ``n`` calls of each, interleaved (a loaded machine's noise falls on both)."""
    ta, tb = [], []
    for _ in range(n):
        for fn, out in ((a, ta), (b, tb)):
            t0 = time.process_time()
            fn()
            out.append(time.process_time() - t0)
    return statistics.median(ta), statistics.median(tb)


async def main(args: argparse.Namespace) -> int:
    with tempfile.TemporaryDirectory(prefix="opsdeck-metrics-bench-") as d:
        base_runs, feed_runs = [], []
        events = 0
        for i in range(args.repeats):  # alternated, best of each: a loaded machine's noise falls on both
            base, t = await run_fleet(Path(d) / f"base{i}.db", args.hours, counting=False)
            base_runs.append(t)
            events = base.state.seq
            await base.close()
            eng, t = await run_fleet(Path(d) / f"fed{i}.db", args.hours, counting=True)
            feed_runs.append(t)
            assert eng.state.seq == events, "the same run, event for event"
            if i < args.repeats - 1:
                await eng.close()
        base_s, feed_s = min(base_runs), min(feed_runs)

        reg = CollectorRegistry(auto_describe=False)
        reg.register(EngineCollector(eng))
        text = exposition(reg).decode()
        samples = sum(len(f.samples) for f in text_string_to_metric_families(text))
        native = native_registry(text)
        ours, theirs = timed_pair(lambda: exposition(reg), lambda: generate_latest(native), args.scrapes)

        await eng.close()
        again = await Engine.open(Path(d) / f"fed{args.repeats - 1}.db")
        t0 = time.perf_counter()
        await start_counting(again)
        seed_s = time.perf_counter() - t0
        await again.close()

    wfs = len(eng.state.workflows)
    print(
        f"fleet: demo, {args.hours:g} simulated hours, {events} events, {wfs} workflows, {len(eng.state.agents)} agents"
    )
    print(
        f"hot path: run with the metrics feed {feed_s:.2f} CPU s vs without {base_s:.2f} CPU s: {feed_s / base_s:.2f}x "
        f"(best of {args.repeats})"
    )
    print(
        f"scrape ({samples} samples): ours {ours * 1e3:.2f} ms vs prometheus-client objects {theirs * 1e3:.2f} ms: "
        f"{ours / theirs:.2f}x (CPU time, median of {args.scrapes}, interleaved)"
    )
    print(f"seeding the counts at host start: {seed_s * 1e3:.1f} ms for {events} events")
    return 0


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--hours", type=float, default=12.0)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--scrapes", type=int, default=200)
    raise SystemExit(asyncio.run(main(ap.parse_args())))
