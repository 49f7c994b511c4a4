"""One-line human summaries of events, for readable logs.

Each function turns one event into a sentence from its data alone ("agent_011
finished workflow_002/extract_1 in 4m12s"), so the line reads the same now and when
the log is read back later. The event catalogue (``core.event_types``) names which
function summarises which type; :func:`default_summary` renders the key fields of the
rest. A summary says what the event records and nothing more.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .events import Event
from .timefmt import between, clock, duration

Summary = Callable[[Event], str]
_MAX_TEXT = 80
_MAX_FIELDS = 6


def _short(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, list):
        if len(value) <= 3 and all(isinstance(v, (str, int, float)) for v in value):
            return "[" + ", ".join(_short(v) for v in value) + "]"
        return f"{len(value)} items"
    if isinstance(value, dict):
        return f"{len(value)} fields"
    text = str(value)
    return text if len(text) <= _MAX_TEXT else text[: _MAX_TEXT - 1] + "…"


def default_summary(ev: Event) -> str:
    """The payload's key fields: its scalars first (ids, names, figures), then sizes of the rest."""
    d = ev.data
    scalars = [(k, v) for k, v in d.items() if isinstance(v, (str, int, float, bool)) and k != "severity"]
    rest = [(k, v) for k, v in d.items() if isinstance(v, (list, dict)) and v]
    parts = [f"{k}={_short(v)}" for k, v in (scalars + rest)[:_MAX_FIELDS]]
    return f"{ev.scope}: {', '.join(parts)}" if parts else ev.scope


def _tail(d: dict[str, Any], key: str, prefix: str = ": ") -> str:
    v = d.get(key)
    return f"{prefix}{_short(v)}" if v not in (None, "", [], {}) else ""


def _paren(d: dict[str, Any], key: str) -> str:
    v = d.get(key)
    return f" ({_short(v)})" if v not in (None, "", [], {}) else ""


# -- the fleet ------------------------------------------------------------------------
def pool_created(ev: Event) -> str:
    p = ev.data["pool"]
    return f"pool {p['name']} created ({p.get('min_size', '?')}-{p.get('max_size', '?')} agents)"


def pool_resized(ev: Event) -> str:
    d = ev.data
    sizes = ", ".join(f"{k.replace('_size', '')} {d[k]}" for k in ("min_size", "max_size") if k in d)
    return f"pool {d['pool']} resized" + (f" to {sizes}" if sizes else "")


def agent_allocated(ev: Event) -> str:
    d = ev.data
    return f"{d['agent']} joined pool {d['pool']} ({', '.join(d.get('specializations', []))})"


def agent_retired(ev: Event) -> str:
    return f"{ev.data['agent']} retired"


def agent_error(ev: Event) -> str:
    d = ev.data
    on = f" while running {d['task']}" if d.get("task") else ""
    return f"{d['agent']} failed{on}{_tail(d, 'error')}"


def agent_timeout(ev: Event) -> str:
    d = ev.data
    silent = f" after {duration(d['silent_s'])} of silence" if "silent_s" in d else ""
    return f"{d['agent']} unreachable{silent}"


def agent_reconnected(ev: Event) -> str:
    return f"{ev.data['agent']} reconnected"


def agent_backoff(ev: Event) -> str:
    d = ev.data
    return f"{d['agent']} backs off for {between(ev.ts, float(d['until']))}"


def agent_seq_applied(ev: Event) -> str:
    return f"{ev.data['agent']} applied the host's seq {ev.data['seq']}"


def partition_merged(ev: Event) -> str:
    d = ev.data
    tasks = d.get("tasks")
    n = len(tasks) if isinstance(tasks, (dict, list)) else 0
    return f"{d['agent']} back from a partition: {n} task(s) reconciled"


def performance_alert(ev: Event) -> str:
    d = ev.data
    silent = f" (silent {duration(d['silent_s'])})" if "silent_s" in d else ""
    return f"{d['agent']}{silent}: {d.get('prediction') or d.get('alert') or 'performance alert'}"


def threshold(ev: Event) -> str:
    """The watched series are utilisation percentages (``monitoring.WATCHED``)."""
    d = ev.data
    by = f" ({d['monitor']} monitor)" if d.get("monitor") else ""
    return f"{d['metric']} at {_pct(d['value'], '.1f')}, over its threshold {_pct(d['threshold'], 'g')}{by}"


def _pct(value: Any, fmt: str) -> str:
    """A percentage with its unit; anything else (an event line from outside) as it is."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return f"{value:{fmt}} %"
    return _short(value)


# -- workflows ------------------------------------------------------------------------
def workflow_created(ev: Event) -> str:
    spec = ev.data["spec"]
    phases = spec.get("phases", [])
    n = sum(len(p.get("tasks", [])) for p in phases)
    return f"{spec['id']} created: {n} tasks in {len(phases)} phases, priority {spec.get('priority', 'normal')}"


def workflow(verb: str) -> Summary:
    def fn(ev: Event) -> str:
        d = ev.data
        dur = f" in {between(ev.ts - d['duration_s'], ev.ts)}" if "duration_s" in d else ""
        return f"{d['workflow_id']} {verb}{dur}{_tail(d, 'error')}{_paren(d, 'reason')}"

    return fn


def workflow_frozen(ev: Event) -> str:
    d = ev.data
    return f"{d['workflow_id']} {'frozen' if d.get('frozen', True) else 'unfrozen'}"


def phase(verb: str) -> Summary:
    def fn(ev: Event) -> str:
        return f"{ev.data['workflow_id']} phase {ev.data['phase']} {verb}"

    return fn


def _resources(r: dict[str, Any] | None) -> str:
    if not r:
        return "cleared"
    return f"{_short(r.get('cpu_cores', 0))} cores, {_short(r.get('memory_gb', 0))} GB, {r.get('agents', 0)} agents"


def resources(key: str, label: str) -> Summary:
    def fn(ev: Event) -> str:
        return f"{ev.data['workflow_id']} {label}: {_resources(ev.data.get(key))}"

    return fn


# -- tasks ------------------------------------------------------------------------------
def task_assigned(ev: Event) -> str:
    return f"{ev.data['agent']} took {ev.data['task']}"


def task_started(ev: Event) -> str:
    d = ev.data
    return f"{d['agent']} started {d['task']}" if d.get("agent") else f"{d.get('task', ev.scope)} started"


def task_progress(ev: Event) -> str:
    d = ev.data
    pct = f" at {float(d['progress']) * 100:.0f}%" if d.get("progress") is not None else ""
    by = f" ({d['agent']})" if d.get("agent") else ""
    return f"{d['task']}{pct}{by}"


def task_completed(ev: Event) -> str:
    d = ev.data
    who = f"{d['agent']} finished" if d.get("agent") else "finished:"
    # its row shows the end's clock time: the figure agrees with it and the start's row
    dur = f" in {between(ev.ts - d['duration_s'], ev.ts)}" if "duration_s" in d else ""
    merged = " (merged from an isolated agent)" if d.get("merged") else ""
    return f"{who} {d['task']}{dur}{merged}"


def task_failed(ev: Event) -> str:
    d = ev.data
    who = f"{d['agent']} failed" if d.get("agent") else "failed:"
    attempt = f" (attempt {d['attempt']})" if "attempt" in d else ""
    then = "; it will be retried" if d.get("retry") else ""
    return f"{who} {d['task']}{attempt}{_tail(d, 'error')}{then}"


def task_reassigned(ev: Event) -> str:
    d = ev.data
    off = f" off {d['from']}" if d.get("from") else ""
    why = f" ({d['reason']})" if d.get("reason") else ""
    return f"{d['task']} taken{off}{why}, queued again"


def task(verb: str) -> Summary:
    def fn(ev: Event) -> str:
        d = ev.data
        return f"{d['task']} {verb}" + (f" on {d['agent']}" if d.get("agent") else "")

    return fn


def waiting_input(ev: Event) -> str:
    d = ev.data
    return f"{d['task']} on {d['agent']} waits for input ({d['reason']})"


def input_sent(ev: Event) -> str:
    d = ev.data
    return f"{d['size']} bytes written to {d['task']}'s input on {d['agent']}"


def worktree(ev: Event) -> str:
    d = ev.data
    what = d.get("outcome") or "opened"
    where = d.get("path") if what == "opened" else d.get("commit")
    return f"{d['task']} worktree {what}: {d.get('branch') or ''}" + (f" ({where})" if where else "")


# -- checkpoints, settings, commands --------------------------------------------------
def checkpoint_created(ev: Event) -> str:
    d = ev.data
    label = f": {d['label']}" if d.get("label") else ""
    scope = f" of {d['workflow']}" if d.get("workflow") else ""
    return f"checkpoint {d['id']}{scope} ({d['kind']}{label}) at seq {d['seq']}"


def checkpoints_pruned(ev: Event) -> str:
    ids = ev.data.get("ids", [])
    return f"{len(ids)} checkpoint(s) pruned" + (f": {_short(ids)}" if ids else "")


def state_repaired(ev: Event) -> str:
    d = ev.data
    return (
        f"log repaired: kept seq 1-{d.get('prefix_through_seq')} and {d.get('later_rows_kept')} later row(s), "
        f"dropped {d.get('rows_dropped')} (damaged file moved to {d.get('moved_to')})"
    )


def state_restored(ev: Event) -> str:
    d = ev.data
    what = d.get("workflow") or "all workflows"
    return f"{what} restored to checkpoint {d.get('checkpoint')}{_paren(d, 'reason')}"


def setting_changed(ev: Event) -> str:
    d = ev.data
    v = d["value"]
    if d["key"] == "drill" and isinstance(v, dict):
        return drill_setting(v)
    if isinstance(v, dict):
        inner = ", ".join(f"{k}={_short(x)}" for k, x in list(v.items())[:_MAX_FIELDS])
        return f"setting {d['key']} = {{{inner}}}"
    return f"setting {d['key']} = {_short(v)}"


def drill_setting(v: dict[str, Any]) -> str:
    """The running drill's record: armed (when its fault comes), injected, ended (how), cancelled."""
    name, status = v.get("name", "?"), v.get("status", "?")
    if status == "armed" and isinstance(v.get("inject_at"), (int, float)):
        return f"drill {name} armed: its fault comes at {clock(v['inject_at'])}"
    if status == "ended" and v.get("outcome") == "not_detected":
        return f"drill {name} ended: its fault was NOT DETECTED within the drill's budget"
    if status == "ended" and v.get("outcome"):
        return f"drill {name} ended: its incident {v['outcome']}"
    return f"drill {name} {status}"


def command_executed(ev: Event) -> str:
    """The command by name (its JSON payload is in the raw line), how it ended, its own summary."""
    d = ev.data
    cmd = str(d.get("command", "?"))
    name = cmd.split(" '", 1)[0].split(" {", 1)[0]
    more = " …" if len(name) < len(cmd) else ""
    return f"{name}{more} → {d.get('status', '?')}{_tail(d, 'summary')}"


def system_error(ev: Event) -> str:
    d = ev.data
    return f"{ev.scope}{_tail(d, 'error')}" + (f" ({d['action']})" if d.get("action") else "")


def learning(ev: Event) -> str:
    d = {k: v for k, v in ev.data.items() if k != "policy"}
    policy = ev.data.get("policy")
    keys = f"; policy: {', '.join(sorted(policy))}" if isinstance(policy, dict) and policy else ""
    body = default_summary(Event(ev.seq, ev.ts, ev.type, ev.component, ev.scope, d, ev.actor))
    return f"lesson {body}{keys}"


# -- resumptions -----------------------------------------------------------------------
def resumption(verb: str) -> Summary:
    def fn(ev: Event) -> str:
        d = ev.data
        step = f" {int(d['step']) + 1}" if "step" in d and verb.endswith("step") else ""
        return f"resumption {d['id']} {verb}{step}{_paren(d, 'reason')}"

    return fn


def resumption_held(ev: Event) -> str:
    return f"resumption {ev.data['id']} {'held' if ev.data.get('held') else 'released'}"


# -- incidents and plans --------------------------------------------------------------
def incident_opened(ev: Event) -> str:
    inc = ev.data["incident"]
    sev = f" ({inc['severity']})" if inc.get("severity") else ""
    return f"{inc['id']} opened: {inc.get('scenario', inc.get('type', '?'))}{sev}"


def incident_resolved(ev: Event) -> str:
    d = ev.data
    out: dict[str, Any] = d["outcome"] if isinstance(d.get("outcome"), dict) else {}
    verdict = "validated" if out.get("validated") else "NOT VALIDATED" if "validated" in out else ""
    recovered = f", recovered in {duration(out['recovery_time_s'])}" if out.get("recovery_time_s") is not None else ""
    why = f": {_short(out['reason'])}" if out.get("reason") else ""
    return f"{d['incident_id']} {d.get('status', 'resolved')}" + (f" ({verdict}{recovered})" if verdict else "") + why


def incident_noted(ev: Event) -> str:
    d = ev.data
    return f"{d['incident_id']}: {d.get('note') or d.get('action') or 'noted'}"


def incident(verb: str) -> Summary:
    def fn(ev: Event) -> str:
        return f"{ev.data['incident_id']} {verb}"

    return fn


def plan_proposed(ev: Event) -> str:
    p = ev.data["plan"]
    title = f": {p['title']}" if p.get("title") else ""
    return f"{p['id']} proposed for {p['incident_id']}{title} ({len(p.get('steps', []))} steps)"


def plan(verb: str) -> Summary:
    def fn(ev: Event) -> str:
        d = ev.data
        return f"{d['plan_id']} {verb}{_tail(d, 'reason')}"

    return fn


def plan_completed(ev: Event) -> str:
    d = ev.data
    out: dict[str, Any] = d["outcome"] if isinstance(d.get("outcome"), dict) else {}
    if not out:
        return f"{d['plan_id']} completed"
    verdict = "validated" if out.get("validated") else "NOT VALIDATED"
    why = f": {_short(out['reason'])}" if out.get("reason") and not out.get("validated") else ""
    return f"{d['plan_id']} completed, {verdict}{why}"


def plan_step(verb: str, why: str = "error") -> Summary:
    def fn(ev: Event) -> str:
        d = ev.data
        return f"{d['plan_id']} step {int(d['step']) + 1} {verb}{_tail(d, why)}"

    return fn


# -- findings, drills ---------------------------------------------------------------------
def drill_fault(ev: Event) -> str:
    d = ev.data
    return f"drill {d.get('drill', '?')} injected its fault" + (f" ({d['kind']})" if d.get("kind") else "")


def drill_fault_confirmed(ev: Event) -> str:
    return f"drill {ev.data.get('drill', '?')}: its fault confirmed by an independent check"
