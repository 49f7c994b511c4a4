"""The projection's derived indexes: what dispatch and admission read without scanning.

Dependency counters, ready queues, running sets, phase and workflow counts, the
active workflows in dispatch order, the queued and guaranteed ones. They are derived
from the hashed records (never part of a snapshot or the state hash), kept in step by
the folds (``index_workflow``) and rebuilt after a snapshot load or an undone unit
of work (``reindex``, ``_index``, ``_unindex``). :class:`~core.projection.State` holds them.
"""

from __future__ import annotations

from bisect import bisect_left, insort
from collections import deque

from .models import BAND_RANK, Task, TaskStatus, Workflow, WorkflowStatus


class WorkIndexes:
    """The derived indexes over ``workflows`` and ``tasks`` (the records the state holds)."""

    workflows: dict[str, Workflow]
    tasks: dict[str, Task]
    pending_deps: dict[str, int]
    dependents: dict[str, list[str]]
    ready: dict[str, deque[str]]
    running_by_wf: dict[str, set[str]]
    phase_left: dict[tuple[str, str], int]
    wf_left: dict[str, int]
    phase_started: set[tuple[str, str]]
    active: set[str]
    """Workflows running or paused: what dispatch and admission look at."""
    dispatch_order: list[tuple[int, float, int, str]]
    """The active workflows in the order dispatch serves them (highest band, then
    oldest), kept sorted as workflows start and stop rather than sorted per dispatch."""
    order_keys: dict[str, tuple[int, float, int, str]]
    queued: set[str]
    """Pending workflows waiting for admission."""
    guaranteed: set[str]
    """Workflows holding a guarantee."""

    def reindex(self) -> None:
        self.pending_deps = {}
        self.dependents = {}
        self.ready = {}
        self.running_by_wf = {}
        self.phase_left = {}
        self.wf_left = {}
        self.phase_started = set()
        self.active = set()
        self.dispatch_order = []
        self.order_keys = {}
        self.queued = set()
        self.guaranteed = set()
        for wf in self.workflows.values():
            self._index(wf)

    def _index(self, wf: Workflow) -> None:
        """The derived indexes of one workflow, from its records."""
        self.index_workflow(wf)
        self.count_workflow(wf)
        ready: deque[str] = deque()
        running: set[str] = set()
        self.ready[wf.id] = ready
        self.running_by_wf[wf.id] = running
        tasks, pending, dependents = self.tasks, self.pending_deps, self.dependents
        for key in wf.tasks:
            t = tasks[key]
            dependents.setdefault(key, [])
            n = 0
            for dep in t.depends_on:
                dependents.setdefault(dep, []).append(key)
                if tasks[dep].status != TaskStatus.COMPLETED:
                    n += 1
            pending[key] = n
        for key in wf.tasks:
            t = tasks[key]
            if t.status == TaskStatus.PENDING and pending[key] == 0:
                ready.append(key)
            elif t.status in (TaskStatus.RUNNING, TaskStatus.PAUSED):
                running.add(key)

    def _unindex(self, wid: str) -> None:
        """Drop one workflow's derived indexes (those of the record the state holds now)."""
        wf = self.workflows.get(wid)
        if wf is not None:
            for k in wf.tasks:
                self.pending_deps.pop(k, None)
                self.dependents.pop(k, None)
            for ph in wf.phases:
                self.phase_left.pop((wid, ph), None)
                self.phase_started.discard((wid, ph))
        self.ready.pop(wid, None)
        self.running_by_wf.pop(wid, None)
        self.wf_left.pop(wid, None)
        self._deactivate(wid)
        self.queued.discard(wid)
        self.guaranteed.discard(wid)

    def index_workflow(self, wf: Workflow) -> None:
        """Keep the workflow-level indexes (active, queued, guaranteed) in step with ``wf``."""
        wid = wf.id
        if wf.status is WorkflowStatus.RUNNING or wf.status is WorkflowStatus.PAUSED:
            if wid not in self.active:
                self.active.add(wid)
                key = (-BAND_RANK[wf.band], wf.created_at, wf.created_seq, wid)
                self.order_keys[wid] = key
                insort(self.dispatch_order, key)
        elif wid in self.active:
            self._deactivate(wid)
        if wf.queued and wf.status is WorkflowStatus.PENDING:
            self.queued.add(wid)
        else:
            self.queued.discard(wid)
        if wf.guarantee is not None:
            self.guaranteed.add(wid)
        else:
            self.guaranteed.discard(wid)

    def _deactivate(self, wid: str) -> None:
        self.active.discard(wid)
        key = self.order_keys.pop(wid, None)
        if key is not None:
            i = bisect_left(self.dispatch_order, key)
            if i < len(self.dispatch_order) and self.dispatch_order[i] == key:
                del self.dispatch_order[i]

    def count_workflow(self, wf: Workflow) -> None:
        left = 0
        for phase in wf.phases:
            self.phase_left[(wf.id, phase)] = 0
        for key in wf.tasks:
            t = self.tasks[key]
            if t.attempts:
                self.phase_started.add((wf.id, t.phase))
            if t.status is not TaskStatus.COMPLETED:
                left += 1
                self.phase_left[(wf.id, t.phase)] += 1
        self.wf_left[wf.id] = left
