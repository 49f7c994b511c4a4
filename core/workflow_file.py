"""Workflow files: agent pools and workflows of real commands, in TOML.

A file is validated completely before anything starts: every problem is reported
with the table and key it is in (``workflows[1] 'build'.phases[0].tasks[2] 'compile':
key 'timeout_s': ...``), and :class:`WorkflowFileError` carries them all.

Format::

    [runtime]                      # optional
    heartbeat_s = 1.0              # agent heartbeat; a dead agent is noticed within one
    sample_s = 1.0                 # psutil sampling period
    stop_grace_s = 5.0             # SIGTERM -> SIGKILL grace when a task is stopped

    [[pools]]
    name = "builders"
    specializations = ["build", "test"]
    size = 2                       # agents started; min_size defaults to size
    max_size = 4

    [[workflows]]
    id = "build_and_test"
    priority = 80                  # 0-100 (bands: CRITICAL >= 90, HIGH >= 70, MEDIUM >= 40)
    depends_on = []                # other workflow ids of this file
    allocation = { cpu_cores = 2, memory_gb = 2, agents = 2 }
    budget = { cost_usd = 5.0, tokens = 2000000 }   # optional; usage reported by its tasks
    workspace = "shared"           # "worktree": each task in its own git worktree of `repo`
    repo = "."                     # (with workspace = "worktree") relative to the file's directory

      [[workflows.phases]]
      name = "compile"

        [[workflows.phases.tasks]]
        id = "compile"
        command = ["python3", "-m", "compileall", "src"]   # argv list; a string is split, no shell
        shell = false              # true: the string runs under /bin/sh
        cwd = "work"               # relative to the workflow file's directory
        env = { PYTHONHASHSEED = "0" }
        specialization = "build"
        timeout_s = 60
        retries = 1                # retries after the first attempt (default: the config's policy)
        memory_gb = 0.5            # scheduled amount and the enforced limit (0 = no limit)
        cpu = 1.0
        depends_on = []            # earlier task ids of this workflow; default: the previous phase
        interactive = false        # true: stdin is a pipe the operator writes to (send-input)
        tty = false                # true: runs under a pseudo-terminal (interactive too)
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from .collector import gc_paused
from .config import Config, TomlError, read_toml
from .models import PhaseSpec, Resources, WorkflowSpec
from .usage.models import Budget


class BudgetEntry(Budget):
    """``budget = { cost_usd = 5.0, tokens = 2000000, warn_share = 0.8 }`` on a workflow or pool."""

    warn_share: float | None = Field(None, gt=0, le=1)
    """Where BUDGET_WARNING is raised (default: the config's ``usage.warn_share``)."""

    def budget(self) -> Budget:
        return Budget(cost_usd=self.cost_usd, tokens=self.tokens)


class WorkflowFileError(Exception):
    """A workflow file that cannot be used; ``problems`` lists every error found."""

    def __init__(self, path: str, problems: list[str]) -> None:
        self.path = path
        self.problems = problems
        super().__init__("\n".join(f"{path}: {p}" for p in problems))


class _Strict(BaseModel):
    # Built at first use, in WorkflowFile's validator: none is validated alone on a run's path.
    model_config = ConfigDict(extra="forbid", defer_build=True)


class RuntimeSection(_Strict):
    heartbeat_s: float = Field(1.0, gt=0, le=300)
    sample_s: float = Field(1.0, gt=0, le=300)
    stop_grace_s: float = Field(5.0, ge=0, le=600)


class PoolEntry(_Strict):
    name: str = Field(min_length=1)
    specializations: list[str] = Field(min_length=1)
    size: int = Field(1, ge=0, le=100)
    min_size: int | None = Field(None, ge=0)
    max_size: int | None = Field(None, ge=1)
    budget: BudgetEntry | None = None


def _path(v: str | None) -> str | None:
    """A path as written in the file: one that the system cannot take (a NUL in it) is
    refused here, where it is named, not when it is resolved or used."""
    if v is not None and "\0" in v:
        raise ValueError("a path cannot hold a NUL character")
    return v


class TaskEntry(_Strict):
    id: str = Field(min_length=1)
    command: list[str] | str
    shell: bool = False
    cwd: str | None = None
    env: dict[str, str] = Field(default_factory=dict)
    specialization: str = Field(min_length=1)
    timeout_s: float | None = Field(None, gt=0)
    retries: int | None = Field(None, ge=0, le=100)
    memory_gb: float = Field(0.5, ge=0)
    cpu: float = Field(1.0, ge=0)
    expected_s: float = Field(0.0, ge=0)
    depends_on: list[str] = Field(default_factory=list)
    interactive: bool = False
    tty: bool = False

    @field_validator("command")
    @classmethod
    def _command_ok(cls, v: list[str] | str) -> list[str] | str:
        if isinstance(v, str):
            if not v.strip():
                raise ValueError("command is empty")
            try:
                shlex.split(v)
            except ValueError as exc:
                raise ValueError(f"command cannot be split into arguments: {exc}") from None
        elif not v or not v[0]:
            raise ValueError("command is an empty argv list")
        if "\0" in (v if isinstance(v, str) else "".join(v)):
            raise ValueError("a command cannot hold a NUL character")
        return v

    @field_validator("env")
    @classmethod
    def _env_ok(cls, v: dict[str, str]) -> dict[str, str]:
        """What a process's environment cannot take (the task could never start)."""
        names = "\0".join(v)  # one scan of them all (a NUL but the joins'): the loop only for a file refused
        if "=" in names or names.count("\0") != len(v) - 1 or "" in v or "\0" in "".join(v.values()):
            for k, x in v.items():
                if not k or "=" in k or "\0" in k:
                    raise ValueError(f"{k!r}: a variable's name cannot be empty or hold '=' or a NUL character")
                if "\0" in x:
                    raise ValueError(f"{k!r}: a variable's value cannot hold a NUL character")
        return v

    _cwd_ok = field_validator("cwd")(_path)


class PhaseEntry(_Strict):
    name: str = Field(min_length=1)
    tasks: list[TaskEntry] = Field(min_length=1)


class WorkflowEntry(_Strict):
    id: str = Field(min_length=1)
    name: str = ""
    priority: int = Field(50, ge=0, le=100)
    depends_on: list[str] = Field(default_factory=list)
    allocation: Resources = Field(default_factory=lambda: Resources(cpu_cores=2, memory_gb=4, agents=3))
    guarantee: Resources | None = None
    budget: BudgetEntry | None = None
    phases: list[PhaseEntry] = Field(min_length=1)
    workspace: Literal["shared", "worktree"] = "shared"
    repo: str | None = None

    _repo_ok = field_validator("repo")(_path)

    @model_validator(mode="after")
    def _worktree_needs_repo(self) -> WorkflowEntry:
        if self.workspace == "worktree" and not self.repo:
            raise ValueError('workspace = "worktree" needs repo = "PATH" (a git repository)')
        return self


class WorkflowFile(_Strict, defer_build=False):  # built at import: every run reads a file
    runtime: RuntimeSection = Field(default_factory=RuntimeSection)
    pools: list[PoolEntry] = Field(min_length=1)
    workflows: list[WorkflowEntry] = Field(min_length=1)

    def specs(self, base: Path) -> list[WorkflowSpec]:
        """Engine workflow specs, dependencies first; relative cwds resolved against ``base``.

        A phase's tasks are validated as one list of rows (``PhaseSpec``), not one
        ``TaskSpec(...)`` call each: a quarter less at 5,000 tasks. The rows' lists and
        dicts are this file's entries' own: validating makes the specs' copies.

        A path that cannot be resolved (a symlink loop) raises :class:`WorkflowFileError`
        naming where it is written (``base`` for the file's path)."""
        out = []
        home = str(base.resolve())  # once, not per task (a system call per path component)
        for i, w in enumerate(self.workflows):
            try:
                repo = str((base / w.repo).resolve()) if w.workspace == "worktree" and w.repo else None
            except (RuntimeError, OSError) as exc:  # a symlink loop (a RuntimeError before 3.13)
                raise WorkflowFileError(
                    str(base), [f"workflows[{i}] {w.id!r}: key 'repo': cannot be resolved: {exc}"]
                ) from None
            phases = []
            for j, ph in enumerate(w.phases):
                rows = []
                for entry in ph.tasks:
                    # The entry's fields read from its __dict__: a pydantic model's attribute goes
                    # through its __getattr__ hook, unspecialised (15 reads a task).
                    t = entry.__dict__
                    cwd = t["cwd"]
                    if cwd is None:
                        cwd = home
                    elif not Path(cwd).is_absolute():
                        try:
                            cwd = str((base / cwd).resolve())
                        except (RuntimeError, OSError) as exc:
                            k = next(k for k, e in enumerate(ph.tasks) if e is entry)
                            where = f"workflows[{i}] {w.id!r}.phases[{j}] {ph.name!r}.tasks[{k}] {t['id']!r}"
                            raise WorkflowFileError(
                                str(base), [f"{where}: key 'cwd': cannot be resolved: {exc}"]
                            ) from None
                    rows.append(
                        {
                            "id": t["id"],
                            "specialization": t["specialization"],
                            "depends_on": t["depends_on"],
                            "duration_s": t["expected_s"],
                            "cpu": t["cpu"],
                            "memory_gb": t["memory_gb"],
                            "command": t["command"],
                            "shell": t["shell"],
                            "cwd": cwd,
                            "env": t["env"],
                            "timeout_s": t["timeout_s"],
                            "retries": t["retries"],
                            "interactive": t["interactive"] or t["tty"],
                            "tty": t["tty"],
                            "repo": repo,
                        }
                    )
                phases.append(PhaseSpec.model_validate({"name": ph.name, "tasks": rows}))
            out.append(
                WorkflowSpec(
                    id=w.id,
                    name=w.name,
                    priority=w.priority,
                    depends_on=list(w.depends_on),
                    allocation=w.allocation,
                    guarantee=w.guarantee,
                    phases=phases,
                )
            )
        order = _dependency_order({w.id: w.depends_on for w in self.workflows})
        return sorted(out, key=lambda s: order.index(s.id))


def _where(raw: dict[str, Any], loc: tuple[Any, ...]) -> str:
    """``workflows[1] 'build'.phases[0].tasks[2] 'compile': key 'timeout_s'`` from a pydantic loc."""
    keys = list(loc)
    # The key is the last name in the location; list indexes after it are part of it (argv[0]).
    last = max((i for i, k in enumerate(keys) if isinstance(k, str)), default=len(keys))
    parts: list[str] = []
    node: Any = raw
    for k in keys[:last]:
        if isinstance(k, int):
            item = node[k] if isinstance(node, list) and k < len(node) else None
            label = f"[{k}]"
            if isinstance(item, dict) and isinstance(item.get("id", item.get("name")), str):
                label += f" {item.get('id', item.get('name'))!r}"
            parts[-1] = parts[-1] + label if parts else label
            node = item
        else:
            parts.append(str(k))
            node = node.get(k) if isinstance(node, dict) else None
    table = ".".join(parts) if parts else "(top level)"
    if last >= len(keys):
        return table
    return f"{table}: key '{''.join(str(keys[last]) + ''.join(f'[{x}]' for x in keys[last + 1 :]))}'"


def _dependency_order(deps: dict[str, list[str]]) -> list[str]:
    order: list[str] = []
    state: dict[str, int] = {}

    def visit(n: str) -> None:
        if state.get(n) == 2:
            return
        if state.get(n) == 1:
            raise ValueError(n)
        state[n] = 1
        for d in deps.get(n, []):
            if d in deps:
                visit(d)
        state[n] = 2
        order.append(n)

    for n in deps:
        visit(n)
    return order


_SPACE = re.compile(r"\s")
"""Whitespace, as ``str.isspace`` tells it (the same Unicode table): one search per id,
not a generator over its characters (about 0.3 us less a task)."""


MAX_FILE_BYTES = 16 * 1024 * 1024
"""A workflow file's size limit: about 140,000 tasks of one-word commands, read and
validated in seconds; a bigger one (or a path such as /dev/zero) is refused unread."""

MAX_FILE_TASKS = 200_000
"""Tasks in one file, counted before validation (what the engine measured at 100,000
tasks in one workflow is its goal; twice that is the limit)."""


def _task_count(raw: dict[str, Any]) -> int:
    return sum(
        len(_list(ph.get("tasks")))
        for w in _list(raw.get("workflows"))
        if isinstance(w, dict)
        for ph in _list(w.get("phases"))
        if isinstance(ph, dict)
    )


def _list(x: Any) -> list[Any]:
    return x if isinstance(x, list) else []


def _strs(x: Any) -> list[str]:
    return [v for v in _list(x) if isinstance(v, str)]


def _cross_checks(raw: dict[str, Any]) -> list[str]:
    """What pydantic cannot see: ids, references, cycles, specializations no pool offers.

    Works on the raw tables (tolerating wrong types, which pydantic reports) so that
    a file with both kinds of problems gets all of them in one go.
    """
    problems: list[str] = []
    pools = [p for p in _list(raw.get("pools")) if isinstance(p, dict)]
    workflows = [w for w in _list(raw.get("workflows")) if isinstance(w, dict)]
    offered = {s for p in pools for s in _strs(p.get("specializations"))}
    pool_names: set[str] = set()
    for i, p in enumerate(pools):
        name = p.get("name")
        where = f"pools[{i}] {name!r}"
        if isinstance(name, str):
            if name in pool_names:
                problems.append(f"{where}: key 'name': pool {name!r} is defined twice")
            pool_names.add(name)
        size = p.get("size", 1)
        lo = p.get("min_size")
        hi = p.get("max_size", max(size, 20) if isinstance(size, int) else 20)
        if isinstance(lo, int) and isinstance(hi, int) and lo > hi:
            problems.append(f"{where}: key 'min_size': {lo} is above max_size {hi}")
        if isinstance(size, int) and isinstance(hi, int) and size > hi:
            problems.append(f"{where}: key 'size': {size} is above max_size {hi}")
    ids = [w.get("id") for w in workflows]
    for i, w in enumerate(workflows):
        wid = w.get("id")
        where = f"workflows[{i}] {wid!r}"
        if isinstance(wid, str):
            if ids.index(wid) != i:
                problems.append(f"{where}: key 'id': workflow {wid!r} is defined twice")
            if _SPACE.search(wid) or ":" in wid:
                problems.append(f"{where}: key 'id': workflow id must be without spaces or colons")
        for d in _strs(w.get("depends_on")):
            if d == wid:
                problems.append(f"{where}: key 'depends_on': a workflow cannot depend on itself")
            elif d not in ids:
                problems.append(f"{where}: key 'depends_on': unknown workflow {d!r}")
        seen: set[str] = set()
        for j, ph in enumerate(_list(w.get("phases"))):
            if not isinstance(ph, dict):
                continue
            for k, t in enumerate(_list(ph.get("tasks"))):
                if not isinstance(t, dict):
                    continue
                tid = t.get("id")
                found: list[str] = []  # this task's problems; where it is is written only for them
                if isinstance(tid, str):
                    if tid in seen:
                        found.append(f"key 'id': task id {tid!r} appears twice in the workflow")
                    if "/" in tid or _SPACE.search(tid):
                        found.append("key 'id': task id must be without spaces or '/'")
                for d in _strs(t.get("depends_on")):
                    if d not in seen:
                        found.append(f"key 'depends_on': {d!r} is not an earlier task of {wid!r}")
                spec = t.get("specialization")
                if isinstance(spec, str) and pools and spec not in offered:
                    found.append(f"key 'specialization': no pool offers {spec!r} (pools offer {sorted(offered)})")
                if found:
                    tw = f"{where}.phases[{j}] {ph.get('name')!r}.tasks[{k}] {tid!r}"
                    problems += [f"{tw}: {m}" for m in found]
                if isinstance(tid, str):
                    seen.add(tid)
    deps = {
        w.get("id"): [d for d in _strs(w.get("depends_on")) if d != w.get("id")]
        for w in workflows
        if isinstance(w.get("id"), str)
    }
    try:
        _dependency_order(deps)  # type: ignore[arg-type]
    except ValueError as exc:
        problems.append(f"workflows: key 'depends_on': the workflow dependencies form a cycle through {exc.args[0]!r}")
    return problems


def parse_workflow_text(text: str, path: str = "<text>") -> WorkflowFile:
    """Validate a workflow file's text; raise :class:`WorkflowFileError` with every problem."""
    try:
        raw = read_toml(text)  # one TOML reader, core.config's (why that one: there)
    except TomlError as exc:
        raise WorkflowFileError(path, [f"not valid TOML: {exc}"]) from None
    if (n := _task_count(raw)) > MAX_FILE_TASKS:
        raise WorkflowFileError(path, [f"workflows: {n:,} tasks in all, over the limit of {MAX_FILE_TASKS:,} a file"])
    problems: list[str] = []
    wf: WorkflowFile | None = None
    try:
        wf = WorkflowFile.model_validate(raw)
    except ValidationError as exc:
        for err in exc.errors():
            msg = err["msg"]
            if err["type"] == "extra_forbidden":
                msg = "unknown key"
            problems.append(f"{_where(raw, tuple(err['loc']))}: {msg}")
    problems += _cross_checks(raw)
    if problems or wf is None:
        raise WorkflowFileError(path, problems)
    return wf


def load_workflow_file(path: str | Path) -> tuple[WorkflowFile, list[WorkflowSpec]]:
    """Read and validate ``path``; the specs have cwds resolved against its directory."""
    p = Path(path)
    try:
        with p.open("rb") as f:
            data = f.read(MAX_FILE_BYTES + 1)
    except FileNotFoundError:
        raise WorkflowFileError(str(p), ["no such workflow file"]) from None
    except OSError as exc:
        raise WorkflowFileError(str(p), [f"cannot read: {exc.strerror}"]) from None
    if len(data) > MAX_FILE_BYTES:
        raise WorkflowFileError(str(p), [f"over {MAX_FILE_BYTES // 2**20} MiB, the limit of a workflow file"])
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise WorkflowFileError(str(p), [f"line {line}: not UTF-8 text (byte 0x{data[exc.start]:02x})"]) from None
    # The file's tables, models and specs are many objects that all live on (a task is
    # about twenty the collector tracks): with the collector on, its passes walked them
    # again and again as they were built, a third or more of the reading of a 5,000-task
    # file (core.collector's policy: held off while building what is not garbage).
    with gc_paused():
        wf = parse_workflow_text(text, str(p))
        try:
            return wf, wf.specs(p.parent)
        except WorkflowFileError as exc:  # a path that cannot be resolved
            raise WorkflowFileError(str(p), exc.problems) from None


def config_problems(wfile: WorkflowFile, specs: list[WorkflowSpec], config: Config) -> list[str]:
    """What a valid file still asks beyond the configured limits (checked before anything starts)."""
    problems = []
    lim = config.workflow_limits
    for i, s in enumerate(wfile.workflows):
        a = s.allocation
        if a.cpu_cores > lim.cpu_cores or a.memory_gb > lim.memory_gb or a.agents > lim.agents:
            problems.append(
                f"workflows[{i}] {s.id!r}: key 'allocation': {a.model_dump()} exceeds the per-workflow limit "
                f"{lim.model_dump(exclude={'max_duration_s'})} (config [workflow_limits])"
            )
    total = sum(p.size for p in wfile.pools)
    if total > config.capacity.agents:
        problems.append(
            f"pools: key 'size': {total} agents in all exceed the capacity of {config.capacity.agents} "
            "agents (config [capacity] agents)"
        )
    return problems
