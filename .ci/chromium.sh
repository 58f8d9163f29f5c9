#!/usr/bin/env bash
# CI setup: Debian's headless Chromium, which the viz tests render the page with.
#
#   .ci/chromium.sh start   # idempotent; installs the chromium package with apt-get when no
#                           # chromium is on PATH, and writes PIPERACK_TEST_CHROMIUM=<path> to
#                           # $PIPERACK_CI_STATE/env
#   .ci/chromium.sh stop    # starts no process, so nothing to stop; drops that line
set -euo pipefail

KIT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
STATE="${PIPERACK_CI_STATE:-/tmp/piperack-ci}"
ENVFILE="$STATE/env"

log() { echo "ci/chromium: $*" >&2; }

# shellcheck source=lib.sh
. "$KIT/.ci/lib.sh"

start() {
    mkdir -p "$STATE"
    local browser
    browser="$(command -v chromium || command -v chromium-browser || true)"
    if [[ -z "$browser" ]]; then
        log "installing chromium with apt-get"
        apt-get update -q >&2
        DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium >&2
        browser="$(command -v chromium)"
    fi
    set_env PIPERACK_TEST_CHROMIUM "$browser"
    log "PIPERACK_TEST_CHROMIUM=$browser"
}

stop() {
    unset_env PIPERACK_TEST_CHROMIUM
}

case "${1:-}" in
    start) start ;;
    stop) stop ;;
    *) echo "usage: $0 start|stop" >&2; exit 2 ;;
esac
