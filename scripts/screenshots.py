"""Regenerate screenshots/*.svg from the running console (seeded, deterministic).

    .venv/bin/python scripts/screenshots.py [--out screenshots] [--size 140x42] [--extra 80x24,160x48]

main.svg: the main screen of the demo fleet; result.svg: the result screen of
``:/resource-manager status``; plan-approval.svg: a resource
exhaustion drill whose plan waits for the operator; approve-confirm.svg: the
confirmation before approving it; plan-edit.svg: the plan editor (one step per
line); incident.svg: the incident's detail screen; rollback.svg: choosing a
checkpoint and confirming the rollback (each workflow before -> after);
rollback-result.svg: what the rollback changed; workflow.svg: a workflow's DAG,
checkpoints and events. At each ``--extra`` size: main, plan-approval and
plan-edit, named ``NAME-WxH.svg``.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from core.config import Config  # noqa: E402
from tui import operator  # noqa: E402
from tui.app import OpsdeckApp  # noqa: E402
from tui.widgets.event_log import EventLog  # noqa: E402
from tui.widgets.footer import FittedFooter  # noqa: E402

MANUAL = {"approval": {"auto": ["analysis"], "manual": ["checkpoint", "monitoring", "destructive", "lifecycle"]}}


async def settle(app: OpsdeckApp, pilot) -> None:  # type: ignore[no-untyped-def]
    await app.host.engine.flush()
    app.refresh_panes()
    log = app.query_one(EventLog)
    log.tick()
    for _ in range(200):
        await pilot.pause(0.02)
        if log.visible_ready():
            break
    await pilot.pause(0.2)


EXTRA_SHOTS = {"main", "plan-approval", "plan-edit"}


async def shoot(out: Path, size: tuple[int, int], suffix: str = "", only: set[str] | None = None) -> list[Path]:
    """The screenshots at ``size``, named ``NAME{suffix}.svg`` (``only``: just these names)."""
    made: list[Path] = []

    async def save(app: OpsdeckApp, pilot, name: str) -> None:  # type: ignore[no-untyped-def]
        if only is not None and name not in only:
            return
        await pilot.pause(0.3)  # a focus change recomposes the footer (its keys go, then come back)
        for _ in range(100):  # wait until its keys are back
            if all(f.children for f in app.screen.query(FittedFooter)):
                break
            await pilot.pause(0.05)
        made.append(out / f"{name}{suffix}.svg")
        app.save_screenshot(str(made[-1]))

    with tempfile.TemporaryDirectory() as tmp:
        app = OpsdeckApp(db=Path(tmp) / "demo.db", config=Config.model_validate(MANUAL), demo=True, seed=7, speed=0)
        async with app.run_test(size=size) as pilot:
            await app.link_opened()
            host = app.host
            eng = host.engine
            await host.advance(600)
            await eng.checkpoint("manual", "before the drill")
            await host.advance(240)
            await settle(app, pilot)
            await save(app, pilot, "main")

            await pilot.press("colon", *"/resource-manager status", "enter")
            for _ in range(100):
                await pilot.pause(0.05)
                if type(app.screen).__name__ == "ResultScreen":
                    break
            await pilot.pause(0.3)
            await save(app, pilot, "result")
            await pilot.press("escape")
            await pilot.pause(0.2)

            res = await app.link.send(operator.drill_command("resource-exhaustion"))
            assert res["status"] == "success", res
            for _ in range(2000):
                await app.host.advance(5.0)
                if any(p.state == "proposed" for p in eng.state.plans.values()):
                    break
            for _ in range(3):  # let the auto-approved analysis steps run
                await app.host.advance(5.0)
            await settle(app, pilot)
            inc = sorted(eng.state.incidents)[-1]
            ol = app.incidents_pane
            ol.focus()
            ids = [o.id for o in ol.options]
            plan_rows = [i for i in ids if i and i.startswith("plan:")]
            if plan_rows:
                ol.highlighted = ids.index(plan_rows[-1])
            await pilot.pause(0.2)
            await save(app, pilot, "plan-approval")

            await pilot.press("a")
            await pilot.pause(0.4)
            await save(app, pilot, "approve-confirm")
            await pilot.press("escape")
            await pilot.pause(0.2)

            await pilot.press("e")
            await pilot.pause(0.6)
            await save(app, pilot, "plan-edit")
            await pilot.press("escape")
            await pilot.pause(0.2)

            ol.highlighted = ids.index(f"incident:{inc}")
            await pilot.press("enter")
            await pilot.pause(0.8)
            await save(app, pilot, "incident")
            await pilot.press("escape")

            await pilot.press("b")
            await pilot.pause(0.4)
            cl = app.screen.query_one("OptionList")
            cps = [o.id for o in cl.options]
            target = next(cp.id for cp in eng.state.checkpoints.values() if cp.label == "before the drill")
            cl.highlighted = cps.index(str(target))
            await pilot.press("enter")
            for _ in range(100):
                await pilot.pause(0.05)
                if type(app.screen).__name__ == "ConfirmScreen":
                    break
            await pilot.pause(0.3)
            await save(app, pilot, "rollback")
            await pilot.press("tab", "enter")
            for _ in range(100):
                await pilot.pause(0.05)
                if "Rolled back" in getattr(app.screen, "title_text", ""):
                    break
            await pilot.pause(0.3)
            await save(app, pilot, "rollback-result")
            await pilot.press("escape", "escape")
            await pilot.pause(0.2)

            wl = app.workflows_pane
            wl.focus()
            wl.highlighted = [o.id for o in wl.options].index("wf:workflow_001")
            await pilot.press("enter")
            await pilot.pause(0.8)
            await save(app, pilot, "workflow")
            await app.shutdown()
    return made


def main() -> int:
    ap = argparse.ArgumentParser(description="Regenerate the console screenshots (SVG).")
    ap.add_argument("--out", default=str(ROOT / "screenshots"))
    ap.add_argument("--size", default="140x42", help="terminal size WxH (default 140x42)")
    ap.add_argument("--extra", default="80x24,160x48", help="more sizes for main, plan-approval and plan-edit")
    args = ap.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    for p in asyncio.run(shoot(out, size_of(args.size))):
        print(p)
    for extra in filter(None, args.extra.split(",")):
        for p in asyncio.run(shoot(out, size_of(extra), f"-{extra.strip()}", EXTRA_SHOTS)):
            print(p)
    return 0


def size_of(text: str) -> tuple[int, int]:
    w, h = (int(x) for x in text.strip().lower().split("x"))
    return w, h


if __name__ == "__main__":
    sys.exit(main())
