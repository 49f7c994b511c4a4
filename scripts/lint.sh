#!/usr/bin/env bash
# The checks CI runs before the tests: ruff (lint and format) and mypy, configured in
# pyproject.toml. The import layers are a test (tests/test_core_boundaries.py).
# Uses the virtualenv scripts/test.sh makes (.venv), or the Python in $PYTHON_BIN.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON_BIN:-.venv/bin/python}
"$PY" -m ruff check .
"$PY" -m ruff format --check .
"$PY" -m mypy
