#!/usr/bin/env bash
# The kit's entry point: makes (or refreshes) the kit's virtualenv, then runs one of its invoke tasks.
#   bash scripts/kit.sh demo     bake a demo project and run its ingest pipeline on the sample data
#   bash scripts/kit.sh test     run the whole test suite
#   bash scripts/kit.sh --list   every kit task
set -euo pipefail
cd "$(dirname "$0")/.."
VENV="${PIPERACK_KIT_VENV:-.venv}"
PYTHON="${PYTHON:-python3}"

if ! "$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
  echo "error: piperack needs Python 3.11 or newer as '$PYTHON' (set PYTHON=/path/to/python3.11)" >&2
  exit 1
fi
if [ ! -x "$VENV/bin/python" ]; then
  echo "Creating the kit's virtualenv in $VENV ..." >&2
  "$PYTHON" -m venv "$VENV"
fi
want="$(cat requirements-dev.txt pyproject.toml | sha256sum | cut -d' ' -f1)"
if [ "$(cat "$VENV/.requirements-dev.sha256" 2>/dev/null)" != "$want" ]; then
  echo "Installing the kit's dev requirements into $VENV ..." >&2
  "$VENV/bin/python" -m pip install --quiet --upgrade pip
  "$VENV/bin/python" -m pip install --quiet -r requirements-dev.txt
  echo "$want" > "$VENV/.requirements-dev.sha256"
fi
exec "$VENV/bin/invoke" "$@"
