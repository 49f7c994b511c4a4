"""Prometheus metrics of a live host (``GET /metrics``), read at scrape time.

A custom prometheus-client collector: each scrape reads the engine's projection
(agents, workflows, incidents, plans) and its telemetry (committed event counts,
task timings, commit times). Nothing here keeps a second account of the fleet;
the counts that need history the projection does not keep live in
``core/telemetry.py`` and are fed by the engine's own events and commits.
Names follow the pattern of Temporal's SDK metrics.

Times of the fleet (task waits and runs, heartbeat ages, detection and recovery)
are on the engine's clock: simulated seconds on the sim runtime, wall seconds on
real agents (``opsdeck_clock_info{clock}`` says which). Commit times are wall time.
"""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, InfoMetricFamily
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4, generate_latest
from prometheus_client.metrics_core import Metric
from prometheus_client.process_collector import ProcessCollector
from prometheus_client.registry import Collector, CollectorRegistry

from ..clock import VirtualClock
from ..engine import Engine
from ..event_types import (
    COMMAND_EXECUTED,
    INCIDENT_OPENED,
    TASK_COMPLETED,
    TASK_REASSIGNED,
    WORKFLOW_CANCELLED,
    WORKFLOW_COMPLETED,
    WORKFLOW_FAILED,
)
from ..incident_models import TERMINAL_PLAN
from ..models import LIVE_AGENT, AgentStatus, TaskStatus, WorkflowStatus
from ..telemetry import TASK_BOUNDS, Histogram
from .usage_metrics import UsageCollector

CONTENT_TYPE = CONTENT_TYPE_PLAIN_0_0_4
"""The text format every Prometheus reads (what generate_latest writes with plain names)."""
FAILURE_REASONS = ("timeout", "memory_limit", "exit_status", "signal", "start_failed", "agent_lost", "error")


def _histogram(name: str, doc: str, h: Histogram) -> HistogramMetricFamily:
    return HistogramMetricFamily(name, doc, buckets=h.cumulative(), sum_value=h.sum)


class EngineCollector(Collector):
    """Everything a scrape shows about one engine, read when it is scraped."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def collect(self) -> Iterator[Metric]:
        eng = self.engine
        tel = eng.telemetry
        now = eng.clock.now()
        virtual = isinstance(eng.clock, VirtualClock)
        runtime = eng.runtime.name if eng.runtime is not None else "none"

        info = InfoMetricFamily("opsdeck_clock", "The engine's clock and runtime: fleet times are on this clock.")
        info.add_metric([], {"clock": "virtual" if virtual else "wall", "runtime": runtime})
        yield info
        yield GaugeMetricFamily("opsdeck_clock_seconds", "The engine's clock now.", value=now)

        counts = tel.counts
        yield CounterMetricFamily(
            "opsdeck_events", "Events committed to the log (the head sequence number).", value=eng.committed_seq
        )
        yield GaugeMetricFamily(
            "opsdeck_events_unflushed",
            "Events emitted and not yet committed (with a batch being written).",
            value=eng.held_events,
        )

        if counts is not None:
            by = counts.by_type
            for name, type_, doc in (
                ("opsdeck_workflow_completed", WORKFLOW_COMPLETED, "Workflows completed."),
                ("opsdeck_workflow_failed", WORKFLOW_FAILED, "Workflows failed."),
                ("opsdeck_workflow_canceled", WORKFLOW_CANCELLED, "Workflows cancelled."),
                ("opsdeck_task_completed", TASK_COMPLETED, "Task attempts completed."),
                ("opsdeck_task_reassigned", TASK_REASSIGNED, "Tasks taken off their agent and queued again."),
                ("opsdeck_incidents_opened", INCIDENT_OPENED, "Incidents detected."),
                ("opsdeck_commands_executed", COMMAND_EXECUTED, "Slash commands executed."),
            ):
                yield CounterMetricFamily(name, doc + " Counted from the log.", value=by[type_])
            failed = CounterMetricFamily(
                "opsdeck_task_failed", "Task attempts failed, by reason. Counted from the log.", labels=["reason"]
            )
            for reason in sorted(set(FAILURE_REASONS) | set(counts.failures)):
                failed.add_metric([reason], counts.failures.get(reason, 0))
            yield failed

        yield _histogram(
            "opsdeck_task_schedule_to_start_seconds",
            "From a task being ready (dependencies met, workflow running) to its assignment to an agent.",
            tel.tasks.schedule_to_start,
        )
        yield _histogram(
            "opsdeck_task_execution_seconds",
            "A task's run: a completed one's duration_s (a real host's elapsed plus paused time, from"
            " its end report; else the time since its assignment: a simulated run, a Ray actor's end"
            " handed over after a silence); a failed or timed-out one, or a completion without"
            " duration_s (merged from a cut-off agent), from its assignment to its end.",
            tel.tasks.execution,
        )
        yield _histogram(
            "opsdeck_store_commit_seconds", "Wall time of one group commit of events to SQLite.", tel.commit_seconds
        )

        yield from self._agents(now)
        yield from self._workflows()
        yield from self._resources()
        yield from self._incidents()

    def _agents(self, now: float) -> Iterator[Metric]:
        s = self.engine.state
        liveness = self.engine.telemetry.liveness
        live = [a for a in s.agents.values() if a.status in LIVE_AGENT]
        specs = sorted(
            {sp for p in s.pools.values() for sp in p.specializations} | {sp for a in live for sp in a.specializations}
        )
        slots = GaugeMetricFamily(
            "opsdeck_task_slots_available",
            "Idle agents (not backing off) that can take a task of the specialization.",
            labels=["specialization"],
        )
        used = GaugeMetricFamily(
            "opsdeck_task_slots_used", "Agents holding a task, by the task's specialization.", labels=["specialization"]
        )
        idle = [
            a
            for a in live
            if a.status is AgentStatus.IDLE and not (a.backoff_until is not None and a.backoff_until > now)
        ]
        busy: dict[str, int] = {}
        for a in live:
            t = s.tasks.get(a.current_task) if a.current_task else None
            if t is not None:
                busy[t.specialization] = busy.get(t.specialization, 0) + 1
        for sp in specs:
            slots.add_metric([sp], sum(1 for a in idle if sp in a.specializations))
            used.add_metric([sp], busy.get(sp, 0))
        yield slots
        yield used

        by_status = GaugeMetricFamily("opsdeck_agents", "Agents by pool and status.", labels=["pool", "status"])
        tally: dict[tuple[str, str], int] = {}
        for a in s.agents.values():
            tally[(a.pool, a.status.value)] = tally.get((a.pool, a.status.value), 0) + 1
        for (pool, status), n in sorted(tally.items()):
            by_status.add_metric([pool, status], n)
        yield by_status

        age = GaugeMetricFamily(
            "opsdeck_agent_heartbeat_age_seconds",
            "Time since the agent was last heard from (live agents).",
            labels=["agent", "pool"],
        )
        for a in sorted(live, key=lambda a: a.id):
            last = max((x for x in (liveness.get(a.id), a.last_heartbeat) if x is not None), default=None)
            if last is not None:
                age.add_metric([a.id, a.pool], max(now - last, 0.0))
        yield age

    def _workflows(self) -> Iterator[Metric]:
        s = self.engine.state
        wf = GaugeMetricFamily(
            "opsdeck_workflows", "Workflows the engine knows (live and finished), by status.", labels=["status"]
        )
        tally = {st.value: 0 for st in WorkflowStatus}
        for w in s.all_workflows():
            tally[w.status.value] += 1
        for st, n in tally.items():
            wf.add_metric([st], n)
        yield wf
        ready = sum(
            len(q) for w, q in s.ready.items() if w in s.workflows and s.workflows[w].status is WorkflowStatus.RUNNING
        )
        yield GaugeMetricFamily("opsdeck_tasks_ready", "Tasks of running workflows waiting for an agent.", value=ready)

    def _resources(self) -> Iterator[Metric]:
        eng = self.engine
        s = eng.state
        cap = eng.config.capacity
        util = GaugeMetricFamily(
            "opsdeck_resource_utilisation_ratio",
            "Utilisation from 0 to 1: cpu and memory from the latest system sample, agents as busy slots of the capacity.",
            labels=["resource"],
        )
        for res, pct in sorted(eng.utilisation().items()):
            util.add_metric([res], pct / 100.0)
        yield util
        cpu = mem = 0.0
        running = 0
        for keys in s.running_by_wf.values():
            for k in keys:
                t = s.tasks[k]
                if t.status is TaskStatus.RUNNING:
                    cpu += t.cpu
                    mem += t.memory_gb
                    running += 1
        in_use = GaugeMetricFamily(
            "opsdeck_resource_in_use",
            "What running tasks hold now (cpu cores, memory GB, agents).",
            labels=["resource"],
        )
        capacity = GaugeMetricFamily("opsdeck_resource_capacity", "The configured capacity.", labels=["resource"])
        for res, used, total in (
            ("cpu_cores", cpu, cap.cpu_cores),
            ("memory_gb", mem, cap.memory_gb),
            ("agents", running, cap.agents),
        ):
            in_use.add_metric([res], used)
            capacity.add_metric([res], total)
        yield in_use
        yield capacity

    def _incidents(self) -> Iterator[Metric]:
        s = self.engine.state
        open_ = GaugeMetricFamily(
            "opsdeck_incidents_open", "Incidents open or recovering, by kind (scenario).", labels=["kind"]
        )
        tally: dict[str, int] = {}
        detection: list[float] = []
        recovery: list[float] = []
        for inc in s.incidents.values():
            kind = str(inc.scenario)
            tally.setdefault(kind, 0)
            if inc.status in ("open", "recovering"):
                tally[kind] += 1
            if inc.fault_at is not None:
                detection.append(max(float(inc.detected_at) - float(inc.fault_at), 0.0))
            if inc.resolved_at is not None and inc.status == "resolved":
                recovery.append(max(float(inc.resolved_at) - float(inc.detected_at), 0.0))
        for kind, n in sorted(tally.items()):
            open_.add_metric([kind], n)
        yield open_
        yield _histogram(
            "opsdeck_detection_latency_seconds",
            "From an incident's fault (when known) to its detection.",
            Histogram.of(TASK_BOUNDS, detection),
        )
        yield _histogram(
            "opsdeck_recovery_seconds",
            "From an incident's detection to its resolution.",
            Histogram.of(TASK_BOUNDS, recovery),
        )

        plans = CounterMetricFamily(
            "opsdeck_recovery_plans", "Recovery plans that reached an outcome.", labels=["outcome"]
        )
        pending = GaugeMetricFamily(
            "opsdeck_recovery_plans_pending", "Recovery plans not yet finished, by state.", labels=["state"]
        )
        done = {st.value: 0 for st in TERMINAL_PLAN}
        waiting = {"proposed": 0, "approved": 0, "executing": 0}
        for p in s.plans.values():
            st = p.state.value
            if st in done:
                done[st] += 1
            else:
                waiting[st] = waiting.get(st, 0) + 1
        for st, n in sorted(done.items()):
            plans.add_metric([st], n)
        for st, n in sorted(waiting.items()):
            pending.add_metric([st], n)
        yield plans
        yield pending


def registry_for(engine: Engine) -> CollectorRegistry:
    """A registry with the engine's collector and this process's own figures."""
    reg = CollectorRegistry(auto_describe=False)
    reg.register(EngineCollector(engine))
    reg.register(UsageCollector(engine))
    ProcessCollector(registry=reg)
    return reg


def exposition(registry: CollectorRegistry) -> bytes:
    """The Prometheus text format of a scrape."""
    return generate_latest(registry)
