#!/usr/bin/env bash
# Sets up a virtualenv (if needed) and runs the whole test suite.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
.venv/bin/python -m pip install -q --disable-pip-version-check -e ".[test,ray]"
exec .venv/bin/python -m pytest "$@"
