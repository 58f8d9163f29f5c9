#!/usr/bin/env bash
# CI service: a Docker engine plus the offline Python base image for the docker tests.
#
#   .ci/docker.sh start   # idempotent; installs docker.io + debootstrap if needed, starts dockerd,
#                         # builds or reuses the base image, writes PIPERACK_TEST_BASE_IMAGE=<tag>
#                         # to $PIPERACK_CI_STATE/env
#   .ci/docker.sh stop    # stops dockerd by its pid, only if start started it
set -euo pipefail

KIT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
STATE="${PIPERACK_CI_STATE:-/tmp/piperack-ci}"
export PIPERACK_DOCKER_STATE="$STATE/docker"
ENVFILE="$STATE/env"

log() { echo "ci/docker: $*" >&2; }

# shellcheck source=lib.sh
. "$KIT/.ci/lib.sh"

start() {
    mkdir -p "$STATE"
    if ! docker info >/dev/null 2>&1; then
        local missing=()
        command -v dockerd >/dev/null 2>&1 || missing+=(docker.io)
        command -v debootstrap >/dev/null 2>&1 || missing+=(debootstrap)
        if ((${#missing[@]})); then
            log "installing ${missing[*]} with apt-get"
            apt-get update -q >&2
            DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${missing[@]}" >&2
        fi
        "$KIT/scripts/docker-engine.sh" start
    else
        log "a Docker engine already answers; using it"
    fi
    if ! command -v debootstrap >/dev/null 2>&1; then  # the base image may need building
        log "installing debootstrap with apt-get"
        apt-get update -q >&2
        DEBIAN_FRONTEND=noninteractive apt-get install -y -q debootstrap >&2
    fi
    local tag
    tag="$("$KIT/scripts/build-base-image.sh")"
    set_env PIPERACK_TEST_BASE_IMAGE "$tag"
    log "PIPERACK_TEST_BASE_IMAGE=$tag"
}

stop() {
    # docker-engine.sh stop only acts on the pid file it wrote under $PIPERACK_DOCKER_STATE,
    # so an engine that was already running before `start` is left alone.
    "$KIT/scripts/docker-engine.sh" stop
}

case "${1:-}" in
    start) start ;;
    stop) stop ;;
    *) echo "usage: $0 start|stop" >&2; exit 2 ;;
esac
