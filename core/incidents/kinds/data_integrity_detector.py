"""Data integrity's detector: periodic verification of the hash chain, every checkpoint
and the live projection against a replay, and the evidence its finding carries (the
playbook and criterion are in ``data_integrity``)."""

from __future__ import annotations

import asyncio
import sqlite3
from typing import TYPE_CHECKING, Any, ClassVar

from pydantic import Field

from ...event_types import DATA_INTEGRITY_ALERT
from ...incident_models import KindEvidence
from ...store import StoreError
from ...verify import VERIFIED_POINT_KEY, Fault, VerifiedPoint, VerifyReport, verify_since, verify_store
from ..detectors import Detector, Finding, active_workflows
from ..integrity import compare, consistency, segments

if TYPE_CHECKING:
    from ...engine import Engine


class IntegrityEvidence(KindEvidence):
    """What the data-integrity playbook, criterion and detector read of its evidence."""

    bad_seqs: list[int] = Field(default_factory=list)
    bad_checkpoints: list[int] = Field(default_factory=list)
    checkpoints_ok: list[int] = Field(default_factory=list)
    checkpoints_bad: dict[str, Any] = Field(default_factory=dict)
    first_bad_seq: int | None = None
    segments: list[dict[str, Any]] = Field(default_factory=list)
    """Each damaged part and how it is resolved (``workflow``/``checkpoint``, ``resolution``)."""


NAME = "data-integrity"


class DataIntegrityDetector(Detector):
    """Periodic verification of the store. Each check reads what was added since the
    last verified point (kept in the store: the next process starts there): the new
    rows' sequence, links and hashes, each new checkpoint by its hash and by a replay
    from the newest checkpoint a replay confirmed, and the live projection against
    that replay. A whole verify (every row and checkpoint, SQLite's file check) runs
    every ``intervals.verify_whole_s`` in a worker thread off the event loop; its
    report is judged at the first check after it ends. Async (it reads the store), so
    the manager runs it from its pump rather than the sample hook."""

    scenario = "data-integrity"
    EVERY_S = 300.0
    POINT_KEY = VERIFIED_POINT_KEY

    def __init__(self, engine: Engine) -> None:
        super().__init__(engine)
        self.last_check = float("-inf")
        self.point: VerifiedPoint | None = None
        """Where the next incremental check starts (read from the store at the first one)."""
        self.last_report: VerifyReport | None = None
        """The newest check's report: its ``coverage`` says what it read."""
        self.whole: asyncio.Task[VerifyReport] | None = None
        self.last_whole: float | None = None
        self.full_checks = 0
        self.incremental_checks = 0

    PERIOD_BY_FREQUENCY: ClassVar[dict[str, float]] = {"every_minute": 60.0, "hourly": 3600.0}

    def period(self) -> float:
        """Seconds between incremental checks: from the integrity monitoring in force
        (``validation_frequency``; ``every_operation`` checks at every pump, so a damaged
        row or checkpoint is found one commit after it lands), else ``EVERY_S``."""
        cfg = self.engine.state.settings.get("monitoring.integrity")
        if isinstance(cfg, dict) and not cfg.get("closed"):
            freq = cfg.get("validation_frequency")
            if freq == "every_operation":
                return 0.0
            if freq in self.PERIOD_BY_FREQUENCY:
                return self.PERIOD_BY_FREQUENCY[freq]
        return self.EVERY_S

    def whole_due(self, now: float) -> bool:
        if self.whole is not None:
            return False
        if self.last_whole is None:
            self.last_whole = now  # the first whole verify one period after the start
        return now - self.last_whole >= self.engine.config.intervals.verify_whole_s

    def due(self, now: float) -> bool:
        if self.engine.store is None:
            return False
        return (
            now - self.last_check >= self.period()
            or self.whole_due(now)
            or (self.whole is not None and self.whole.done())
        )

    async def check_async(self, now: float) -> Finding | None:
        eng = self.engine
        assert eng.store is not None
        if self.whole is not None and self.whole.done():
            task, self.whole = self.whole, None
            finding = await self._judge_whole(task)
            if finding is not None:
                return finding
        if self.whole_due(now):
            await eng.flush()
            self.last_whole = now
            self.whole = asyncio.create_task(verify_store(eng.store, replay_checkpoints=True))
        if now - self.last_check < self.period():
            return None
        self.last_check = now
        return await self.incremental()

    async def _judge_whole(self, task: asyncio.Task[VerifyReport]) -> Finding | None:
        self.full_checks += 1
        try:
            rep = task.result()
        except (sqlite3.Error, StoreError) as exc:
            rep = VerifyReport(integrity=[("file", f"the whole verify could not read the database: {exc}")])
        self.last_report = rep
        faults, bad_cps = self._new_damage(rep)
        if not faults and not bad_cps and not rep.integrity:
            return None
        cons = await consistency(self.engine, trusted=set(rep.checkpoints_ok))
        return await self._finding(rep, faults, bad_cps, cons)

    async def incremental(self) -> Finding | None:
        """Check what was added since the verified point; move the point on when all
        it found is already known (resolved incidents)."""
        eng = self.engine
        store = eng.store
        assert store is not None
        if self.point is None:
            self.point = VerifiedPoint.parse(await store.meta(self.POINT_KEY))
        await eng.flush()
        while eng.unflushed:  # a real-time runtime may emit while the store writes
            await eng.flush()
        # The live state at the store's sequence, taken without an await in between.
        live = eng.state.snapshot()
        upto = eng.state.seq
        inc = await verify_since(store, self.point, until=upto)
        rep = inc.report
        self.incremental_checks += 1
        self.last_report = rep
        faults, bad_cps = self._new_damage(rep)
        cons = compare(live, inc.state.snapshot(), inc.point.base_seq) if inc.state is not None else None
        if (cons is None or not cons["differs_in"]) and not faults and not bad_cps:
            self.point = inc.point
            if not store.readonly and not eng.readonly:
                async with eng.store_lock:
                    await store.set_meta(self.POINT_KEY, inc.point.model_dump_json())
            return None
        cons = cons or {"restart_seq": self.point.base_seq, "differs_in": [], "diffs": []}
        return await self._finding(rep, faults, bad_cps, cons)

    def _new_damage(self, rep: VerifyReport) -> tuple[list[Fault], dict[int, str]]:
        known_seqs, known_cps = self.acknowledged()
        faults = [f for f in rep.faults if f.seq not in known_seqs]
        bad_cps = {k: v for k, v in rep.checkpoints_bad.items() if k not in known_cps}
        return faults, bad_cps

    async def _finding(
        self, rep: VerifyReport, faults: list[Fault], bad_cps: dict[int, str], cons: dict[str, Any]
    ) -> Finding:
        eng = self.engine
        bad_seqs = [f.seq for f in faults]
        segs = await segments(eng, bad_seqs)
        for d in cons.get("diffs", []):
            segs.append(
                {
                    "state": f"{d['kind']}:{d['id']}",
                    "fields": d["fields"],
                    "workflow": d["workflow"],
                    "resolution": "replay_from_log",
                }
            )
        affected = sorted({sg["workflow"] for sg in segs if sg.get("workflow")})
        for cid in bad_cps:
            cp = eng.state.checkpoints.get(cid)
            if cp is not None and cp.workflow:
                affected = sorted(set(affected) | {cp.workflow})
        if not affected:
            affected = active_workflows(eng)
        alert = (
            "hash_chain_broken"
            if faults
            else "checkpoint_corrupt"
            if bad_cps
            else "state_inconsistency"
            if cons["differs_in"]
            else "database_damaged"
        )
        data = {
            "alert_type": alert,
            "severity": "critical",
            "affected_workflows": affected,
            "corruption_risk": "high" if faults or cons["differs_in"] else "medium",
            "immediate_action_required": True,
        }
        evidence = {
            "bad_seqs": bad_seqs,
            "faults": [{"seq": f.seq, "problem": f.problem} for f in faults[:20]],
            "segments": segs,
            "bad_checkpoints": sorted(bad_cps),
            "checkpoints_bad": {str(k): v for k, v in bad_cps.items()},
            "checkpoints_ok": self._restart_points(rep),
            "first_bad_seq": min(bad_seqs) if bad_seqs else None,
            "projection_differs_in": cons["differs_in"],
            "restart_point_seq": cons["restart_seq"],
            "last_verified_seq": self.point.seq if self.point is not None else 0,
            "events": rep.events,
            "integrity": [{"table": t, "problem": p} for t, p in rep.integrity[:20]],
            "coverage": rep.coverage.as_dict(),
        }
        return Finding(
            self.scenario,
            DATA_INTEGRITY_ALERT,
            "coordination",
            "state_synchronization",
            "critical",
            data,
            evidence,
            affected,
        )

    def _restart_points(self, rep: VerifyReport) -> list[int]:
        """The checkpoints a replay of the log confirmed: those this check confirmed and,
        after an incremental check, the checkpoint its replay started from (confirmed by
        an earlier replay, its hash checked again by this one). An incremental report lists only the
        checkpoints it read, so without the base a plan would see no clean restart point."""
        ok = set(rep.checkpoints_ok)
        base = rep.coverage.replayed_from
        if (
            not rep.coverage.whole
            and base
            and base not in rep.checkpoints_bad
            and base in self.engine.state.checkpoints
        ):
            ok.add(base)
        return sorted(ok)

    def subject(self, f: Finding) -> tuple[str, ...]:
        """The damage: the log rows and checkpoints found bad, the state that differs."""
        ev = f.evidence
        return (
            *(f"seq:{n}" for n in sorted(ev.get("bad_seqs", []))),
            *(f"checkpoint:{n}" for n in sorted(ev.get("bad_checkpoints", []))),
            *(f"state:{d}" for d in sorted(ev.get("projection_differs_in", []))),
        )

    def acknowledged(self) -> tuple[set[int], set[int]]:
        """Faults already handled by a resolved incident: the log is append-only, so a
        corrupted row stays; once assessed and recovered from, it is not re-alerted."""
        seqs: set[int] = set()
        cps: set[int] = set()
        for inc in self.engine.state.incidents.values():
            if inc.scenario == self.scenario and inc.status == "resolved":
                ev = inc.evidence.of(IntegrityEvidence)
                seqs.update(ev.bad_seqs)
                cps.update(ev.bad_checkpoints)
                cps.update(inc.outcome.quarantined_checkpoints or [])
        return seqs, cps
