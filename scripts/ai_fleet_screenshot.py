"""Screenshot of the console running examples/ai_fleet.toml on the local runtime (real
processes): tokens and cost per workflow and agent, the header's budget gauge, the
usage incident's plan waiting for the operator.

    .venv/bin/python scripts/ai_fleet_screenshot.py [--out screenshots] [--size 160x48] [--wait 25]
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from core.config import Config  # noqa: E402
from core.workflow_file import load_workflow_file  # noqa: E402
from tui.app import OpsdeckApp  # noqa: E402


async def shoot(out: Path, size: tuple[int, int], wait: float) -> Path:
    wfile, specs = load_workflow_file(ROOT / "examples" / "ai_fleet.toml")
    with tempfile.TemporaryDirectory() as tmp:
        db = Path(tmp) / "ai_fleet.db"
        config = Config()

        async def open_host() -> Any:
            from core.host.host import Host

            return await Host.open_local(db, wfile, specs, config)

        app = OpsdeckApp(db=db, config=config, speed=1.0, host_factory=open_host)
        async with app.run_test(size=size) as pilot:
            await app.link_opened()
            eng = app.host.engine
            end = time.monotonic() + wait
            while time.monotonic() < end:
                await pilot.pause(0.5)
                st = eng.state
                if any(i.scenario == "usage-exhaustion" for i in st.incidents.values()) and st.usage.holds:
                    break
            await pilot.pause(1.0)
            app.refresh_panes()
            await pilot.pause(0.5)
            path = out / "ai-fleet.svg"
            app.save_screenshot(str(path))
    return path


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--out", default=str(ROOT / "screenshots"))
    p.add_argument("--size", default="160x48")
    p.add_argument("--wait", type=float, default=25.0)
    a = p.parse_args()
    w, h = (int(x) for x in a.size.split("x"))
    print(asyncio.run(shoot(Path(a.out), (w, h), a.wait)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
