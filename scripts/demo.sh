#!/usr/bin/env bash
# Sets up a virtualenv (if needed) and opens the console on the built-in demo fleet.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
.venv/bin/python -m pip install -q --disable-pip-version-check -e .
exec .venv/bin/opsdeck demo "$@"
