"""The scheduler: which ready task goes to which idle agent, now.

Ready tasks (dependencies met) of running workflows go to idle agents whose
specialization matches, highest priority band first, then oldest workflow, within
each workflow's allocation (and staged-resumption limit) and the global capacity.
An unused guarantee of one workflow is never handed to another. A pool held after
a rate limit lends none of its agents before its reset time, then only as many as
its hold allows.
"""

from __future__ import annotations

from itertools import chain

from .config import Capacity
from .models import AgentStatus, TaskStatus, WorkflowStatus
from .projection import State

# Python 3.11 reads an enum class's attributes through EnumType.__getattr__'s slow
# path (0.2-0.4 us per ``TaskStatus.PENDING``, several per task): the members the
# hot paths compare with, bound once.
_IDLE, _BUSY, _PAUSED, _UNREACHABLE = AgentStatus.IDLE, AgentStatus.BUSY, AgentStatus.PAUSED, AgentStatus.UNREACHABLE
_PENDING, _RUNNING = TaskStatus.PENDING, TaskStatus.RUNNING
_WF_RUNNING = WorkflowStatus.RUNNING


def dispatch(state: State, capacity: Capacity, now: float) -> list[tuple[str, str]]:
    """Assignments (task key, agent id) to make now. Pure: it does not change state."""
    idle: dict[str, list[str]] = {}
    busy = 0
    free = 0
    """Idle agents offered (each counted once, whatever its specializations)."""
    room = held_room(state, now) if state.usage.holds else None
    for a in sorted(state.agents.values(), key=lambda a: a.id) if room else state.agents.values():
        # An agent's fields read from its __dict__: a pydantic model's attribute goes through
        # its __getattr__ hook, unspecialised (several hundred instructions each on Python 3.11).
        ad = a.__dict__
        st = ad["status"]
        if st is _IDLE:
            until = ad["backoff_until"]
            if until is not None and until > now:
                continue
            if room is not None and ad["pool"] in room:
                if room[ad["pool"]] <= 0:
                    continue  # a pool held after a rate limit: no more of its agents start work
                room[ad["pool"]] -= 1
            free += 1
            aid = ad["id"]
            for spec in ad["specializations"]:
                lst = idle.get(spec)
                if lst is None:
                    idle[spec] = [aid]
                else:
                    lst.append(aid)
        elif st is _BUSY or st is _PAUSED or st is _UNREACHABLE:
            busy += 1
    if not idle or busy >= capacity.agents:
        return []
    for lst in idle.values():
        lst.sort(reverse=True)  # pop() takes the lowest id: deterministic
    workflows, ready = state.workflows, state.ready
    wfs = (  # highest band, then oldest; read lazily: dispatch stops once nothing more can start
        w
        for w in (workflows[key[3]] for key in state.dispatch_order)
        if w.status is _WF_RUNNING and not w.frozen and ready.get(w.id)
    )
    first = next(wfs, None)
    if first is None:
        return []

    # What running tasks hold, per workflow: only workflows with running tasks are
    # visited, and no pydantic model is built per workflow per dispatch.
    used: dict[str, list[float]] = {}
    g_cpu = g_mem = 0.0
    tasks = state.tasks
    running = _RUNNING
    for wid, keys in state.running_by_wf.items():
        if not keys:
            continue
        cpu = mem = 0.0
        n = 0
        for k in keys:
            t = tasks[k]
            if t.status is running:
                cpu += t.cpu
                mem += t.memory_gb
                n += 1
        used[wid] = [cpu, mem, float(n)]
        g_cpu += cpu
        g_mem += mem
    zero = (0.0, 0.0, 0.0)
    reserved: dict[str, tuple[float, float, float]] = {}
    for wid in state.guaranteed:
        w = state.workflows[wid]
        if w.guarantee is not None and w.status in (WorkflowStatus.RUNNING, WorkflowStatus.PAUSED):
            u = used.get(wid, zero)
            reserved[wid] = (
                max(0.0, w.guarantee.cpu_cores - u[0]),
                max(0.0, w.guarantee.memory_gb - u[1]),
                max(0.0, w.guarantee.agents - u[2]),
            )
    res_cpu = res_mem = res_agents = 0.0
    if reserved:  # most dispatches: no guarantee held, no sums to build
        res_cpu = sum(r[0] for r in reserved.values())
        res_mem = sum(r[1] for r in reserved.values())
        res_agents = sum(r[2] for r in reserved.values())

    out: list[tuple[str, str]] = []
    taken: set[str] = set()
    offered = sum(map(len, idle.values()))
    shared = offered != len(set(chain.from_iterable(idle.values()))) if offered > 1 else False
    """Some idle agent is offered in more than one pool (several specializations): an agent
    popped from a pool may have been taken from another already."""
    cap_cpu, cap_mem, cap_agents = capacity.cpu_cores, capacity.memory_gb, capacity.agents
    for w in chain((first,), wfs):
        if free == 0 or busy >= cap_agents:
            break  # every idle agent taken, or the fleet's agent capacity used: nothing more can start
        own = reserved.get(w.id, zero)
        alloc = w.allocation
        lim_cpu, lim_mem, lim_agents = alloc.cpu_cores, alloc.memory_gb, alloc.agents
        if w.stage_limit is not None:
            lim_cpu = min(lim_cpu, w.stage_limit.cpu_cores)
            lim_mem = min(lim_mem, w.stage_limit.memory_gb)
            lim_agents = min(lim_agents, w.stage_limit.agents)
        u_cpu, u_mem, u_n = used.get(w.id, zero)  # each workflow is visited once: kept in locals
        # The bounds the checks compare with, worked out once per workflow: what its
        # allocation allows, and what the capacity allows less what other workflows'
        # guarantees hold back (res_* less its own). Assigning this workflow's tasks shrinks
        # only its own guarantee (below), never the others', so the bounds hold for all of
        # them. (Worked out again after each shrink, (res - s) - (own - s), they would be
        # equal in exact arithmetic but could differ by rounding, inside the 1e-9 slack.)
        over_cpu, over_mem = lim_cpu + 1e-9, lim_mem + 1e-9
        room_cpu = cap_cpu - (res_cpu - own[0]) + 1e-9
        room_mem = cap_mem - (res_mem - own[1]) + 1e-9
        room_agents = cap_agents - (res_agents - own[2])
        for key in ready[w.id]:
            if u_n >= lim_agents or free == 0:
                break
            t = tasks[key]
            if t.status is not _PENDING:
                continue
            pool = idle.get(t.specialization)
            if not pool:
                continue
            cpu, mem = t.cpu, t.memory_gb
            # A task larger than the allocation may still run alone.
            if u_n > 0 and (u_cpu + cpu > over_cpu or u_mem + mem > over_mem):
                continue
            if g_cpu + cpu > room_cpu and g_cpu > 0:
                continue
            if g_mem + mem > room_mem and g_mem > 0:
                continue
            if busy + 1 > room_agents:
                continue
            if shared:
                agent = None
                while pool:
                    cand = pool.pop()
                    if cand not in taken:
                        agent = cand
                        break
                if agent is None:
                    continue
                taken.add(agent)
            else:  # each idle agent is in one pool only: none of this one's was taken from another
                agent = pool.pop()
            free -= 1
            out.append((key, agent))
            u_cpu += cpu
            u_mem += mem
            u_n += 1
            g_cpu += cpu
            g_mem += mem
            busy += 1
            if own is not zero and own != zero:  # zero itself: no guarantee (most workflows)
                shrink = (min(own[0], cpu), min(own[1], mem), min(own[2], 1.0))
                res_cpu -= shrink[0]
                res_mem -= shrink[1]
                res_agents -= shrink[2]
                own = (own[0] - shrink[0], own[1] - shrink[1], own[2] - shrink[2])
    return out


def held_room(state: State, now: float) -> dict[str, int]:
    """How many more agents of each held pool may start work now: none before its reset
    time, then what the hold allows less those already working."""
    room: dict[str, int] = {}
    for pool, h in state.usage.holds.items():
        room[pool] = 0 if now < h.reset_at else h.agents_allowed
    for a in state.agents.values():
        if a.pool in room and a.status in (AgentStatus.BUSY, AgentStatus.PAUSED, AgentStatus.UNREACHABLE):
            room[a.pool] -= 1
    return room
