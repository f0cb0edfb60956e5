#!/usr/bin/env bash
# README command one: set up a virtual environment and run the demo on the embedded
# default store: generate a company, import it, analyse it, print the headline figures,
# then serve the web app on 127.0.0.1:8000 with demo users (--no-serve to skip).
set -euo pipefail
cd "$(dirname "$0")/.."
VENV="${KEHU_VENV:-.venv}"
python3 -m venv "$VENV"
"$VENV/bin/python" -m pip install --quiet --upgrade pip
"$VENV/bin/python" -m pip install --quiet -e .
exec "$VENV/bin/kehu" demo "$@"
