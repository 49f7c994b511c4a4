"""A host's report the console cannot apply (it raises ValueError: a value it cannot
read) is skipped, said on stderr; the host's reports after it are read and applied."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from tests.local_harness import drive, header, open_text, task_toml, wf_status, workflow_toml

pytestmark = pytest.mark.skipif(not hasattr(os, "killpg"), reason="POSIX process groups")


async def test_a_report_that_cannot_be_applied_is_skipped_and_the_host_read_on(
    tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    text = header(heartbeat=0.2) + workflow_toml(
        "w", task_toml("t", ["sleep", "0.6"], "shell"), allocation={"cpu_cores": 1, "memory_gb": 1, "agents": 1}
    )
    engine, runtime, rec = await open_text(tmp_path / "r.db", text, tmp_path)
    apply = runtime.reports.on_report
    refused: list[Any] = []

    def on_report(h: Any, msg: Any) -> None:
        if msg.get("t") == "started" and not refused:
            refused.append(msg)
            raise ValueError("a value the console cannot read")
        apply(h, msg)

    runtime.reports.on_report = on_report  # type: ignore[method-assign]
    try:
        await drive(engine, lambda: wf_status(engine, "w") == "completed", timeout=20)
    finally:
        await runtime.shutdown()
        await engine.close()
    assert refused
    (done,) = rec.of("TASK_COMPLETED")
    assert done.data["task"] == "w/t"
    assert not rec.of("AGENT_FAILED"), "the host was read on, not replaced"
    assert "a report skipped" in capfd.readouterr().err
