"""``scripts/demo.sh`` installs the package only when needed: the first launch, a venv
without ``opsdeck``, or a ``pyproject.toml`` changed since the last install; any other
launch opens the console straight away. Run as a subprocess on a copy of the script
whose venv's ``python`` and ``opsdeck`` record how they were called."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

from tests.conftest import REPO

FAKE_PYTHON = """#!/bin/sh
echo "python $*" >> "$CALLS"
if [ "$1 $2 $3" = "-m pip install" ]; then
  printf '#!/bin/sh\\necho "opsdeck $*" >> "$CALLS"\\n' > "$(dirname "$0")/opsdeck"
  chmod +x "$(dirname "$0")/opsdeck"
fi
"""


def _repo(tmp: Path) -> Path:
    root = tmp / "repo"
    (root / "scripts").mkdir(parents=True)
    shutil.copy(REPO / "scripts" / "demo.sh", root / "scripts" / "demo.sh")
    (root / "pyproject.toml").write_text("[project]\nname = 'x'\n")
    bin_ = root / ".venv" / "bin"
    bin_.mkdir(parents=True)
    (bin_ / "python").write_text(FAKE_PYTHON)
    (bin_ / "python").chmod(0o755)
    return root


def _launch(root: Path, calls: Path) -> list[str]:
    calls.write_text("")
    r = subprocess.run(
        ["bash", str(root / "scripts" / "demo.sh"), "--seed", "3"],
        env={**os.environ, "CALLS": str(calls)},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert r.returncode == 0, r.stderr
    return calls.read_text().splitlines()


def test_demo_script_installs_only_when_needed(tmp_path: Path) -> None:
    root = _repo(tmp_path)
    calls = tmp_path / "calls"
    install = "python -m pip install -q --disable-pip-version-check -e ."
    demo = "opsdeck demo --seed 3"
    assert _launch(root, calls) == [install, demo]  # first launch: no opsdeck in the venv yet
    assert _launch(root, calls) == [demo]  # nothing changed: no install
    assert _launch(root, calls) == [demo]
    stamp = root / ".venv" / ".opsdeck-installed"
    before = (root / "pyproject.toml").stat().st_mtime - 60
    os.utime(stamp, (before, before))  # pyproject.toml changed after the last install
    assert _launch(root, calls) == [install, demo]
    assert _launch(root, calls) == [demo]
    (root / ".venv" / "bin" / "opsdeck").unlink()  # a venv that lost the package
    assert _launch(root, calls) == [install, demo]
