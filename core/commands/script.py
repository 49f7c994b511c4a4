"""Headless scripts: slash commands, event lines, clock and fault directives, expectations.

A script is parsed whole before anything runs (a syntax error names its line and
nothing happens), then run step by step against one engine. The format is described
in ``opsdeck script --help`` (:data:`opsdeck.subcommands.script.FORMAT`).
"""

from __future__ import annotations

import asyncio
import json
import shlex
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from ..engine import Engine, EngineError
from ..events import Event, EventHeader, EventLineError, looks_like_event_line, parse_line
from ..runtimes import NotApplicable
from .context import Services
from .grammar import CommandSyntaxError, tokenize
from .payloads import parse_duration


class ScriptError(Exception):
    """A malformed script: ``line`` is 1-based."""

    def __init__(self, line: int, message: str) -> None:
        super().__init__(f"line {line}: {message}")
        self.line = line
        self.message = message


@dataclass
class Step:
    line: int
    kind: str
    text: str
    args: dict[str, Any] = field(default_factory=dict)


FAULTS: dict[str, tuple[int, int]] = {
    "fail": (1, 99),
    "slow": (2, 2),
    "partition": (1, 99),
    "heal": (0, 99),
    "spike": (2, 3),
    "leak": (2, 2),
    "degrade": (1, 1),
    "restore-speed": (0, 0),
}


def _expect(line: int, text: str, negate: bool) -> Step:
    try:
        words = shlex.split(text)
    except ValueError as exc:
        raise ScriptError(line, f"expect: {exc}") from None
    within = None
    if len(words) >= 2 and words[-2] == "within":
        try:
            within = parse_duration(words[-1])
        except ValueError as exc:
            raise ScriptError(line, f"expect: {exc}") from None
        words = words[:-2]
    if not words:
        raise ScriptError(line, "expect needs an event type: expect TYPE [field=value ...] [within DURATION]")
    etype, rest = words[0], words[1:]
    try:
        EventHeader(type=etype, component="x", scope="x", data={})
    except ValidationError:
        raise ScriptError(line, f"expect: {etype!r} is not an EVENT_TYPE (UPPER_SNAKE_CASE)") from None
    fields: dict[str, Any] = {}
    for w in rest:
        if "=" not in w or w.startswith("="):
            raise ScriptError(line, f"expect: {w!r} is not field=value")
        k, v = w.split("=", 1)
        try:
            fields[k] = json.loads(v)
        except json.JSONDecodeError:
            fields[k] = v
    return Step(line, "expect", text, {"type": etype, "fields": fields, "within": within, "negate": negate})


def parse_script(text: str) -> list[Step]:
    """Every step of a script, or ScriptError naming the first bad line."""
    steps: list[Step] = []
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        n = i + 1
        raw = lines[i]
        s = raw.strip()
        i += 1
        if not s or s.startswith("#"):
            continue
        if s.startswith("/"):
            buf = [raw]
            while True:
                try:
                    tokenize("\n".join(buf))
                    break
                except CommandSyntaxError as exc:
                    if "unterminated" not in exc.message or i >= len(lines):
                        raise ScriptError(n, f"command: {exc.message}") from None
                    buf.append(lines[i])
                    i += 1
            steps.append(Step(n, "command", "\n".join(buf).strip()))
            continue
        if looks_like_event_line(s) or (s[:1].isupper() and ":" in s.split(" ", 1)[0]):
            try:
                header = parse_line(s)
            except EventLineError as exc:
                raise ScriptError(n, f"event line, column {exc.column}: {exc.message}") from None
            steps.append(Step(n, "event", s, {"header": header}))
            continue
        word, _, rest = s.partition(" ")
        rest = rest.strip()
        if word in ("advance", "wait"):
            try:
                steps.append(Step(n, "advance", s, {"seconds": parse_duration(rest)}))
            except ValueError as exc:
                raise ScriptError(n, f"{word}: {exc}") from None
        elif word == "expect":
            negate = rest.startswith("no ")
            steps.append(_expect(n, rest[3:] if negate else rest, negate))
        elif word == "expect-error":
            steps.append(Step(n, "expect-error", s, {"code": rest or None}))
        elif word == "fault":
            parts = rest.split()
            if not parts or parts[0] not in FAULTS:
                raise ScriptError(n, f"fault: expected one of {', '.join(FAULTS)}")
            lo, hi = FAULTS[parts[0]]
            if not lo <= len(parts) - 1 <= hi:
                raise ScriptError(n, f"fault {parts[0]}: takes {lo}..{hi} argument(s), got {len(parts) - 1}")
            steps.append(Step(n, "fault", s, {"name": parts[0], "args": parts[1:]}))
        else:
            raise ScriptError(
                n, f"unknown step {word!r}: expected a /command, an event line, advance, expect, expect-error or fault"
            )
    return steps


def field_matches(data: dict[str, Any], path: str, want: Any) -> bool:
    cur: Any = data
    for part in path.split("."):
        if isinstance(cur, dict) and part in cur:
            cur = cur[part]
        else:
            return False
    if cur == want:
        return True
    if isinstance(cur, list) and want in cur:
        return True
    return isinstance(want, str) and not isinstance(cur, str) and json.dumps(cur) == want


@dataclass
class ScriptResult:
    ok: bool
    failed_line: int | None = None
    message: str = ""
    steps_run: int = 0


class StepFailed(Exception):
    """A step that could not be carried out where the script runs (not a malformed script)."""


class StepRunner:
    """Runs parsed steps; what a step does to a fleet is left to the hooks, so the
    same loop drives an engine in this process (:class:`ScriptRunner`) or a live
    host through its endpoint (``core.host.script``). ``out`` receives every
    printed line; :attr:`events` collects the events seen since the script began."""

    def __init__(self, out: Callable[[str], None], quiet: bool = False, actor: str = "script") -> None:
        self.out = out
        self.quiet = quiet
        self.actor = actor
        self.events: list[Event] = []
        self.cursor = 0

    def _on_event(self, ev: Event) -> None:
        self.events.append(ev)
        if not self.quiet:
            self.out(ev.line())

    def _find(self, st: Step, start: int) -> int | None:
        a = st.args
        for i in range(start, len(self.events)):
            ev = self.events[i]
            if ev.type == a["type"] and all(field_matches(ev.data, k, v) for k, v in a["fields"].items()):
                return i
        return None

    # -- hooks ------------------------------------------------------------------
    async def _command(self, text: str) -> dict[str, Any]:
        raise NotImplementedError

    async def _inject(self, header: EventHeader) -> dict[str, Any] | None:
        """Record an event line; an error ``{"code", "message"}`` when it is rejected."""
        raise NotImplementedError

    async def _advance(self, seconds: float) -> None:
        raise NotImplementedError

    async def _fault(self, st: Step) -> None:
        raise NotImplementedError

    async def _wait_for(self, st: Step, start: int, within: float) -> int | None:
        """Let time pass (up to ``within``) until an event matching ``st`` arrives."""
        raise NotImplementedError

    async def _let_pass(self, seconds: float) -> None:
        """Let ``seconds`` pass (a negative expectation's window)."""
        raise NotImplementedError

    async def _finish(self) -> None:
        return None

    # -- the loop ---------------------------------------------------------------
    async def run(self, steps: list[Step]) -> ScriptResult:
        n = 0
        last_error: dict[str, Any] | None = None
        for idx, st in enumerate(steps):
            n += 1
            nxt = steps[idx + 1] if idx + 1 < len(steps) else None
            try:
                if st.kind == "command":
                    resp = await self._command(st.text)
                    head = st.text.splitlines()[0]
                    if resp["status"] == "success":
                        last_error = None
                        self.out(f"# line {st.line}: ok {head[:100]}: {resp['result'].get('summary', '')}")
                    else:
                        err = resp["error"]
                        last_error = err
                        self.out(f"# line {st.line}: error {err['code']}: {err['message']}")
                        if nxt is None or nxt.kind != "expect-error":
                            return ScriptResult(False, st.line, f"command failed: {err['code']}: {err['message']}", n)
                elif st.kind == "expect-error":
                    want = st.args["code"]
                    if last_error is None:
                        return ScriptResult(False, st.line, "expect-error: the previous command succeeded", n)
                    if want and last_error["code"] != want:
                        return ScriptResult(
                            False, st.line, f"expect-error: got {last_error['code']}, expected {want}", n
                        )
                    self.out(f"# line {st.line}: expectation met: {st.text}")
                    last_error = None
                elif st.kind == "event":
                    rejected = await self._inject(st.args["header"])
                    if rejected is not None:
                        last_error = rejected
                        self.out(f"# line {st.line}: event rejected: {rejected['code']}: {rejected['message']}")
                        if nxt is None or nxt.kind != "expect-error":
                            return ScriptResult(
                                False, st.line, f"event rejected: {rejected['code']}: {rejected['message']}", n
                            )
                    else:
                        last_error = None
                elif st.kind == "advance":
                    await self._advance(st.args["seconds"])
                elif st.kind == "fault":
                    await self._fault(st)
                elif st.kind == "expect":
                    res = await self._expectation(st)
                    if res is not None:
                        return ScriptResult(False, st.line, res, n)
            except StepFailed as exc:
                return ScriptResult(False, st.line, f"{st.kind}: {exc}", n)
        await self._finish()
        return ScriptResult(True, None, "", n)

    async def _expectation(self, st: Step) -> str | None:
        a = st.args
        within = a["within"]
        start = self.cursor
        if a["negate"]:
            if within:
                await self._let_pass(within)
            hit = self._find(st, start)
            if hit is not None:
                return f"expectation failed: {st.text}: found {self.events[hit].line()[:200]}"
            self.cursor = len(self.events)
            self.out(f"# line {st.line}: expectation met: {st.text}")
            return None
        hit = self._find(st, start)
        if hit is None and within:
            hit = await self._wait_for(st, start, within)
        if hit is None:
            seen = [e for e in self.events[start:] if e.type == a["type"]]
            why = (
                f"{len(seen)} {a['type']} event(s) since the last expectation, none matching"
                if seen
                else f"no {a['type']} event since the last expectation"
            )
            if seen:
                why += f"; last: {seen[-1].line()[:200]}"
            return f"expectation failed: {st.text}: {why}" + (f" (waited {within:g}s)" if within else "")
        self.cursor = hit + 1
        self.out(f"# line {st.line}: expectation met: {st.text} (seq {self.events[hit].seq})")
        return None


class ScriptRunner(StepRunner):
    """Runs parsed steps on an engine in this process (the simulated clock advances
    when the script says so)."""

    def __init__(
        self,
        engine: Engine,
        out: Callable[[str], None],
        quiet: bool = False,
        actor: str = "script",
        services: Services | None = None,
    ) -> None:
        super().__init__(out, quiet=quiet, actor=actor)
        self.engine = engine
        self.services = services
        """What its commands run with (None: the command language's own operations)."""
        engine.observe(self.events.append)  # expectations see events as they are folded
        engine.subscribe(self._print)  # printed lines are committed ones
        if not engine.readonly:
            from .resumption import attach

            attach(engine)  # staged resumptions stored in the database keep advancing

    async def _command(self, text: str) -> dict[str, Any]:
        from . import run_command

        resp = await run_command(self.services or self.engine, text, actor=self.actor)
        await self.engine.flush()  # its event lines are printed (committed) before its result
        return resp

    def _print(self, ev: Event) -> None:
        if not self.quiet:
            self.out(ev.line())

    async def _inject(self, header: EventHeader) -> dict[str, Any] | None:
        try:
            self.engine.inject(header, actor=self.actor)
        except EngineError as exc:
            return {"code": exc.code, "message": exc.message}
        return None

    async def _advance(self, seconds: float) -> None:
        from ..clock import VirtualClock

        if not isinstance(self.engine.clock, VirtualClock):
            raise StepFailed("advance needs the simulated clock")
        await self.engine.advance(seconds)

    async def _fault(self, st: Step) -> None:
        rt = self.engine.runtime
        name, args = st.args["name"], st.args["args"]
        if rt is None:
            raise ScriptError(st.line, "faults need a runtime to inject them into")
        known = self.engine.state.agents
        if name in ("fail", "slow", "leak", "partition") or (name == "heal" and args):
            for a in args[: (None if name in ("partition", "heal") else 1)]:
                if a not in known:
                    raise ScriptError(st.line, f"fault {name}: no agent {a!r}")
        try:
            if name == "fail":
                rt.fail_agent(args[0], " ".join(args[1:]) or "process crashed")
            elif name == "slow":
                rt.slow_agent(args[0], float(args[1]))
            elif name == "partition":
                rt.partition(args)
            elif name == "heal":
                rt.heal(args or None)
            elif name == "spike":
                rt.load_spike(float(args[0]), float(args[1]), parse_duration(args[2]) if len(args) > 2 else None)
            elif name == "leak":
                rt.leak(args[0], float(args[1]))
            elif name == "degrade":
                rt.degrade(float(args[0]))
            elif name == "restore-speed":
                rt.restore_speed()
        except (ValueError, NotApplicable) as exc:
            raise ScriptError(st.line, f"fault {name}: {exc}") from None

    async def _wait_for(self, st: Step, start: int, within: float) -> int | None:
        """The clock runs in sample steps up to ``within`` simulated seconds."""
        deadline = self.engine.clock.now() + within
        step = self.engine.config.intervals.sample_s
        checked = start
        hit = None
        while hit is None and self.engine.clock.now() < deadline:
            await self._advance(min(step, deadline - self.engine.clock.now()))
            hit = self._find(st, checked)
            checked = len(self.events) if hit is None else checked
        return hit

    async def _let_pass(self, seconds: float) -> None:
        await self._advance(seconds)

    async def _finish(self) -> None:
        await self.engine.flush()


async def run_script_file(
    engine: Engine, path: str | Path, out: Callable[[str], None], quiet: bool = False
) -> ScriptResult:
    text = await asyncio.to_thread(Path(path).read_text, encoding="utf-8")
    steps = parse_script(text)
    return await ScriptRunner(engine, out, quiet=quiet).run(steps)
