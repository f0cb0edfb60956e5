#!/usr/bin/env bash
# README command two: set up a fresh virtual environment and run the whole test suite
# (lint, types, unit, doctests, PostgreSQL, slow end-to-end tests).
set -euo pipefail
cd "$(dirname "$0")/.."
VENV="${KEHU_VENV:-.venv}"

# PostgreSQL at 127.0.0.1:5432 is part of the suite (CI=true never skips it): start the
# machine's cluster if it is installed but not running.
if command -v pg_isready >/dev/null && ! pg_isready -h 127.0.0.1 -p 5432 -q 2>/dev/null; then
  if command -v pg_ctlcluster >/dev/null && [ -d /etc/postgresql ]; then
    pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -n1)" main start || true
  fi
fi

python3 -m venv "$VENV"
"$VENV/bin/python" -m pip install --quiet --upgrade pip
"$VENV/bin/python" -m pip install --quiet -e ".[test]"

"$VENV/bin/ruff" check src tests benchmarks scripts
"$VENV/bin/mypy"
"$VENV/bin/python" -m pytest "$@"
