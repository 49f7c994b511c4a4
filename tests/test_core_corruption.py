"""Damaged databases: every verb ends with a clear message, never a traceback or a hang,
and nothing is appended to a database that does not verify.

Seeded and bounded: ``OPSDECK_FAULT_TRIALS`` (default 12) corrupted copies of a small
demo database (a flipped bit in a checkpoint's state, in an event row, anywhere in
a page; the file emptied or truncated), each given to verify, exec, script, demo
--headless and events (``tests/corruption_harness.py``).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from .conftest import REPO

WRITERS = ("exec", "script", "demo")


@pytest.mark.slow
def test_every_verb_refuses_damage_clearly(tmp_path: Path) -> None:
    trials = int(os.environ.get("OPSDECK_FAULT_TRIALS", "12"))
    seed = int(os.environ.get("OPSDECK_FAULT_SEED", "7"))
    r = subprocess.run(
        [sys.executable, "-m", "tests.corruption_harness", str(seed), str(trials), str(tmp_path / "w")],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert r.returncode == 0, r.stderr[-2000:]
    report = json.loads(r.stdout.strip().splitlines()[-1])
    damaged = 0
    for t in report["trials"]:
        v = t["verify"]
        label = f"{t['kind']}: {t['what']}"
        assert not v["raised"] and not v["hung"] and not v["leaked_threads"], (label, v)
        assert v["rc"] in (0, 1, 2), (label, v)
        if v["rc"] == 2:
            assert v["stderr"].startswith("opsdeck: ") and "Traceback" not in v["stderr"], (label, v)
        # Damage confined to the metrics table costs samples: writers go on (saying so).
        bad = v["rc"] != 0 and not v["metrics_only"]
        damaged += v["rc"] != 0
        for x in t["verbs"]:
            where = (label, x["argv"], x["stderr"])
            assert not x["raised"], where
            assert not x["hung"] and not x["leaked_threads"], where
            if x["rc"] not in (0, None):
                assert "opsdeck: " in x["stderr"] or "error" in x["stderr"], where
            if bad and x["argv"] in WRITERS:
                assert x["rc"] != 0, ("a writer used a database that fails verify", where)
                assert x["events_after"] == x["events_before"], ("a writer appended to a damaged database", where)
                assert (
                    "verify" in x["stderr"] or "not an opsdeck database" in x["stderr"] or "damaged" in x["stderr"]
                ), where
            if bad and x["argv"] == "events" and v["first_bad_seq"] is not None:
                assert x["rc"] != 0 and f"seq {v['first_bad_seq']}" in x["stderr"], where
            if not bad and x["rc"] == 0 and x["argv"] in WRITERS:
                assert x["verify_after"]["rc"] == 0, where
    assert damaged >= trials // 2, (
        f"only {damaged} of {trials} corruptions were damage at all: the harness is not hitting data"
    )
