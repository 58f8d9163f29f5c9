#!/usr/bin/env bash
# CI service: the Airflow virtualenv of the airflow tests (apache-airflow 3.3 + the docker and
# cncf-kubernetes providers, pinned by src/piperack/airflow_constraints.txt), made once per machine
# under ~/.cache/piperack-airflow/<key>/ and reused after that.
#
#   .ci/airflow.sh start   # idempotent; makes or reuses the virtualenv and writes
#                          # PIPERACK_TEST_AIRFLOW_VENV=<path> to $PIPERACK_CI_STATE/env
#   .ci/airflow.sh stop    # starts no process, so nothing to stop; drops that line
set -euo pipefail

KIT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
STATE="${PIPERACK_CI_STATE:-/tmp/piperack-ci}"
ENVFILE="$STATE/env"
PYTHON="${PIPERACK_KIT_VENV:-$KIT/.venv}/bin/python"

log() { echo "ci/airflow: $*" >&2; }

# shellcheck source=lib.sh
. "$KIT/.ci/lib.sh"

start() {
    mkdir -p "$STATE"
    local started venv
    started=$(date +%s)
    venv="$(cd "$KIT" && "$PYTHON" -c 'from scripts import kitlib; print(kitlib.airflow_venv())' | tail -n 1)"
    "$venv/bin/airflow" version >/dev/null
    set_env PIPERACK_TEST_AIRFLOW_VENV "$venv"
    log "PIPERACK_TEST_AIRFLOW_VENV=$venv (ready in $(( $(date +%s) - started )) s)"
}

stop() {
    unset_env PIPERACK_TEST_AIRFLOW_VENV
}

case "${1:-}" in
    start) start ;;
    stop) stop ;;
    *) echo "usage: $0 start|stop" >&2; exit 2 ;;
esac
