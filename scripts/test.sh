#!/usr/bin/env bash
# Sets up a virtualenv (if needed), runs the lint checks (scripts/lint.sh), then the
# whole test suite in parallel (pytest-xdist, one worker per core; OPSDECK_TEST_WORKERS
# sets another count, 0 runs serially). Arguments go to pytest and win over these
# defaults (e.g. -m "not slow" for the fast set).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
.venv/bin/python -m pip install -q --disable-pip-version-check -e ".[test,ray]"
./scripts/lint.sh
# Byte-compile the project once: the suite starts hundreds of `python -m opsdeck`
# processes, and with PYTHONDONTWRITEBYTECODE set each would compile it again.
.venv/bin/python -m compileall -q core tui opsdeck themes >/dev/null
# --dist loadgroup: tests marked xdist_group (one Ray instance, module fixtures that
# build a database) stay on one worker; the rest go to whichever worker is free.
exec .venv/bin/python -m pytest -n "${OPSDECK_TEST_WORKERS:-auto}" --dist loadgroup "$@"
