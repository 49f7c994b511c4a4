#!/usr/bin/env bash
# Sets up a virtualenv (if needed), runs the lint checks (scripts/lint.sh), then the
# whole test suite. Arguments go to pytest (e.g. -m "not slow" for the fast set).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
.venv/bin/python -m pip install -q --disable-pip-version-check -e ".[test,ray]"
./scripts/lint.sh
exec .venv/bin/python -m pytest "$@"
