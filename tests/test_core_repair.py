"""``opsdeck repair``: each damage kind of the corruption harness ends with a database
that verifies, the damaged file kept aside, and a STATE_REPAIRED event saying what was
dropped; every damage message names the repair; a database that verifies is left alone."""

from __future__ import annotations

import json
import random
import sqlite3
import subprocess
from pathlib import Path

import pytest

from tests.corruption_harness import build, copy_anchor, corrupt

from .conftest import REPO, opsdeck_cmd

# The clean database is built once for the module: one worker under pytest-xdist.
pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("repair")]

DAMAGE = ["checkpoint", "event", "page", "empty", "truncate"]


def opsdeck(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(opsdeck_cmd(*args), capture_output=True, text=True, cwd=REPO, timeout=120)


@pytest.fixture(scope="module")
def clean(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build(tmp_path_factory.mktemp("repair-clean"))


@pytest.mark.parametrize("kind", DAMAGE)
def test_repair_of_each_damage_kind_ends_verifying(kind: str, clean: Path, tmp_path: Path) -> None:
    db = tmp_path / "d.db"
    for seed in range(20):  # a flipped bit can land where nothing reads it: take damage verify sees
        what = corrupt(clean, db, random.Random(seed), kind)
        before = opsdeck("verify", "--db", str(db), "--json")
        if before.returncode != 0:
            break
    assert before.returncode != 0, f"{what}: the damage is seen first"
    assert "opsdeck repair --db" in before.stdout + before.stderr, "the damage message names the repair"
    copy = tmp_path / "copy.db"
    copy.write_bytes(db.read_bytes())
    copy_anchor(db, copy)
    exe = opsdeck("exec", "--db", str(copy), "/workflow-status")
    if exe.returncode != 0:  # a writer refuses what it finds damaged, naming the repair
        assert "opsdeck repair --db" in exe.stderr, exe.stderr

    rep = opsdeck("repair", "--db", str(db), "--json")
    assert rep.returncode == 0, rep.stderr
    report = json.loads(rep.stdout)
    aside = Path(report["moved_to"])
    assert aside.exists() and aside.name.startswith("d.db.damaged-")
    assert aside.read_bytes() == db.with_name(aside.name).read_bytes()

    after = opsdeck("verify", "--db", str(db), "--json")
    assert after.returncode == 0, after.stdout + after.stderr
    with sqlite3.connect(db) as con:
        rows = con.execute("SELECT seq, data FROM events WHERE type = 'STATE_REPAIRED'").fetchall()
    assert len(rows) == 1
    seq, data = rows[0][0], json.loads(rows[0][1])
    assert seq == report["prefix_through_seq"] + 1 and data["rows_dropped"] == report["rows_dropped"]
    first_bad = json.loads(before.stdout).get("first_bad_seq") if before.stdout.startswith("{") else None
    if first_bad is not None:  # the row verify named is where the kept prefix ends, and it is named as dropped
        assert report["prefix_through_seq"] == first_bad - 1 and first_bad in data["dropped_seqs"], (report, what)
    # the repaired database is usable
    assert opsdeck("exec", "--db", str(db), "/workflow-status").returncode == 0


def test_repair_leaves_a_database_that_verifies_alone(clean: Path, tmp_path: Path) -> None:
    db = tmp_path / "ok.db"
    db.write_bytes(clean.read_bytes())
    copy_anchor(clean, db)
    r = opsdeck("repair", "--db", str(db))
    assert r.returncode == 0 and "nothing to repair" in r.stderr
    assert db.read_bytes() == clean.read_bytes()
    assert not list(tmp_path.glob("ok.db.damaged-*"))


def test_repair_of_a_missing_database_is_a_clear_error(tmp_path: Path) -> None:
    r = opsdeck("repair", "--db", str(tmp_path / "none.db"))
    assert r.returncode == 2 and "no such database" in r.stderr and "Traceback" not in r.stderr
