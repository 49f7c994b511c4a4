#!/usr/bin/env bash
# Sets up a virtualenv (if needed), runs the lint checks (scripts/lint.sh) beside the
# whole test suite in parallel (pytest-xdist, one worker per core; OPSDECK_TEST_WORKERS
# sets another count, 0 runs serially). Arguments go to pytest and win over these
# defaults (e.g. -m "not slow" for the fast set). Exits non-zero if either fails.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
.venv/bin/python -m pip install -q --disable-pip-version-check -e ".[test,ray]"
# Byte-compile the project once: the suite starts hundreds of `python -m opsdeck`
# processes, and with PYTHONDONTWRITEBYTECODE set each would compile it again.
.venv/bin/python -m compileall -q core tui opsdeck themes >/dev/null
# The lint (about 30 s of CPU, most of it mypy without a cache) runs beside the tests
# instead of before them: the workers spend much of their time waiting on the processes
# they start, and the lint fills those waits. Its output is printed when it ends.
lint_out=$(mktemp)
trap 'rm -f "$lint_out"' EXIT
./scripts/lint.sh >"$lint_out" 2>&1 &
lint_pid=$!
# --dist loadgroup: tests marked xdist_group (one Ray instance, module fixtures that
# build a database) stay on one worker; the rest go to whichever worker is free.
tests=0
.venv/bin/python -m pytest -n "${OPSDECK_TEST_WORKERS:-auto}" --dist loadgroup "$@" || tests=$?
lint=0
wait "$lint_pid" || lint=$?
echo "--- scripts/lint.sh (exit $lint)"
cat "$lint_out"
if [ "$lint" -ne 0 ]; then
  echo "lint failed (exit $lint)" >&2
fi
exit $((tests != 0 ? tests : lint))
