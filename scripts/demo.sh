#!/usr/bin/env bash
# Sets up a virtualenv (if needed) and opens the console on the built-in demo fleet.
# The package is installed (editable) only when the venv lacks it or pyproject.toml
# changed since the last install: the sources are read in place, so edits need none.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
STAMP=.venv/.opsdeck-installed
if [ ! -x .venv/bin/opsdeck ] || [ ! -f "$STAMP" ] || [ pyproject.toml -nt "$STAMP" ]; then
  .venv/bin/python -m pip install -q --disable-pip-version-check -e .
  touch "$STAMP"
fi
exec .venv/bin/opsdeck demo "$@"
