"""Another user's files never act as the operator: ownership checks and planted symlinks.

Like git's safe.directory and ssh's key checks, a database (or its WAL, anchor, lease,
token) that another user owns, or that others may write, is refused naming the file
and its owner, and nothing is written; ``--trust-owner`` lets it through and the
trust is recorded. A symlink planted at a file opsdeck writes beside a database is an
error naming it, and its target is left untouched. (Tests run as root here: the
second user is made with useradd when absent; without root or useradd they skip
saying why.)
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from core.host.server import ensure_token
from core.private import OwnershipError, PrivateError, open_beside

from .files_support import OTHER_USER, beside, event_count, make_db, other_uid, run


def _give(db: Path, uid: int) -> None:
    for p in beside(db):
        os.chown(p, uid, -1)


@pytest.mark.slow
def test_a_database_another_user_owns_is_refused_by_every_verb(tmp_path: Path, cli_env: dict[str, str]) -> None:
    uid = other_uid()
    db = tmp_path / "theirs.db"
    make_db(db, cli_env)
    _give(db, uid)
    before = event_count(db)
    for args in (
        ("exec", "--db", str(db), "/coordination-hub checkpoint"),
        ("verify", "--db", str(db)),
        ("events", "--db", str(db)),
        ("serve", "--db", str(db)),
    ):
        r = run(cli_env, *args)
        assert r.returncode == 2, (args, r.stdout, r.stderr)
        assert str(db) in r.stderr and f"{OTHER_USER} (uid {uid})" in r.stderr, (args, r.stderr)
        assert "--trust-owner" in r.stderr and "Traceback" not in r.stderr, (args, r.stderr)
    assert event_count(db) == before
    assert all(p.stat().st_uid == uid for p in beside(db))  # nothing was re-created as ours


@pytest.mark.slow
def test_trust_owner_lets_it_through_and_records_it(tmp_path: Path, cli_env: dict[str, str]) -> None:
    uid = other_uid()
    db = tmp_path / "shared.db"
    make_db(db, cli_env)
    _give(db, uid)
    r = run(cli_env, "--trust-owner", "exec", "--db", str(db), "/coordination-hub checkpoint")
    assert r.returncode == 0, r.stderr
    audit = run(cli_env, "--trust-owner", "events", "--db", str(db), "--type", "OWNERSHIP_TRUSTED", "--json")
    assert audit.returncode == 0, audit.stderr
    assert f"uid {uid}" in audit.stdout and str(db) in audit.stdout, audit.stdout


@pytest.mark.slow
def test_files_writable_by_others_are_refused(tmp_path: Path, cli_env: dict[str, str]) -> None:
    db = tmp_path / "open.db"
    make_db(db, cli_env)
    os.chmod(db, 0o666)
    r = run(cli_env, "exec", "--db", str(db), "/workflow-status")
    assert r.returncode == 2 and "writable by others" in r.stderr and str(db) in r.stderr, r.stderr
    os.chmod(db, 0o600)
    os.chmod(f"{db}.head", 0o620)
    r = run(cli_env, "exec", "--db", str(db), "/workflow-status")
    assert r.returncode == 2 and "anchor" in r.stderr and "writable by its group" in r.stderr, r.stderr
    os.chmod(f"{db}.head", 0o600)
    assert run(cli_env, "exec", "--db", str(db), "/workflow-status").returncode == 0


@pytest.mark.slow
def test_a_lease_another_user_owns_is_refused(tmp_path: Path, cli_env: dict[str, str]) -> None:
    uid = other_uid()
    db = tmp_path / "a.db"
    make_db(db, cli_env)
    lease = Path(f"{db}.lease")
    lease.write_text("")
    os.chown(lease, uid, -1)
    r = run(cli_env, "exec", "--db", str(db), "/coordination-hub checkpoint")
    assert r.returncode == 2 and str(lease) in r.stderr and f"uid {uid}" in r.stderr, r.stderr
    assert lease.read_text() == "" and lease.stat().st_uid == uid


@pytest.mark.slow
@pytest.mark.parametrize("planted", [".head", ".lease", ".clean"])
def test_planted_symlinks_are_refused_and_their_targets_untouched(
    tmp_path: Path, cli_env: dict[str, str], planted: str
) -> None:
    db = tmp_path / "fleet.db"
    make_db(db, cli_env)
    target = tmp_path / "precious.txt"
    target.write_text("do not touch\n" * 50)
    os.chmod(target, 0o644)
    link = Path(f"{db}{planted}")
    link.unlink(missing_ok=True)
    link.symlink_to(target)
    before = event_count(db)
    r = run(cli_env, "exec", "--db", str(db), "/coordination-hub checkpoint")
    assert r.returncode == 2, r.stderr
    assert str(link) in r.stderr and "symlink" in r.stderr and "Traceback" not in r.stderr, r.stderr
    assert target.read_text() == "do not touch\n" * 50
    assert stat.S_IMODE(target.stat().st_mode) == 0o644
    assert link.is_symlink() and event_count(db) == before


@pytest.mark.slow
def test_both_planted_links_at_once(tmp_path: Path, cli_env: dict[str, str]) -> None:
    """The issue's case: both links in place, one checkpoint command."""
    db = tmp_path / "fleet.db"
    make_db(db, cli_env)
    targets = {}
    for suffix in (".head", ".lease"):
        t = tmp_path / f"target{suffix}"
        t.write_bytes(b"x" * 300)
        os.chmod(t, 0o640)
        Path(f"{db}{suffix}").unlink(missing_ok=True)
        Path(f"{db}{suffix}").symlink_to(t)
        targets[t] = t.read_bytes()
    r = run(cli_env, "exec", "--db", str(db), "/coordination-hub checkpoint")
    assert r.returncode == 2 and "symlink" in r.stderr, r.stderr
    for t, data in targets.items():
        assert t.read_bytes() == data and stat.S_IMODE(t.stat().st_mode) == 0o640


def test_a_planted_token_link_is_refused(tmp_path: Path) -> None:
    db = tmp_path / "t.db"
    secret = tmp_path / "secret"
    secret.write_text("s" * 64)
    os.chmod(secret, 0o600)
    Path(f"{db}.token").symlink_to(secret)
    with pytest.raises(PrivateError, match="symlink"):
        ensure_token(db)
    assert secret.read_text() == "s" * 64


def test_open_beside_refuses_links_and_foreign_files(tmp_path: Path) -> None:
    f = tmp_path / "f"
    (tmp_path / "t").write_text("t")
    f.symlink_to(tmp_path / "t")
    with pytest.raises(PrivateError, match=f"{f}: the anchor is a symlink"):
        open_beside(f, os.O_WRONLY | os.O_CREAT, "anchor")
    g = tmp_path / "g"
    g.write_text("")
    os.chmod(g, 0o646)
    with pytest.raises(OwnershipError, match="writable by others"):
        open_beside(g, os.O_RDONLY, "lease")
    fd = open_beside(g, os.O_RDONLY, "lease", trust=True)  # trusted: let through
    os.close(fd)
    new = tmp_path / "new"
    fd = open_beside(new, os.O_WRONLY | os.O_CREAT, "anchor")
    os.close(fd)
    assert stat.S_IMODE(new.stat().st_mode) == 0o600
