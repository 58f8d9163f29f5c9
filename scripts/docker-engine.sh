#!/usr/bin/env bash
# Start or stop a local Docker engine for piperack's tests and demos.
#
#   scripts/docker-engine.sh start    # idempotent: no-op when an engine already answers
#   scripts/docker-engine.sh stop     # stops the dockerd *this script* started (by its pid)
#   scripts/docker-engine.sh status   # exit 0 when an engine answers
#
# The engine runs without a bridge network and without touching iptables
# (containers use --network none or --network host), which is what works on
# machines without a full network stack. State (pid file, log) lives in
# ${PIPERACK_DOCKER_STATE:-/tmp/piperack-docker}. Needs root and the docker.io
# package (dockerd, containerd, runc). PIPERACK_DOCKERD_ARGS adds dockerd options (e.g. a second
# engine: --host unix:///tmp/e2/docker.sock --data-root … --exec-root … --pidfile …, with
# DOCKER_HOST pointing at that socket).
set -euo pipefail

STATE="${PIPERACK_DOCKER_STATE:-/tmp/piperack-docker}"
PIDFILE="$STATE/dockerd.pid"
LOG="$STATE/dockerd.log"
WAIT="${PIPERACK_DOCKER_WAIT:-60}"

answers() { docker info >/dev/null 2>&1; }

start() {
    if answers; then
        echo "docker-engine: an engine already answers; nothing to start" >&2
        return 0
    fi
    if ! command -v dockerd >/dev/null 2>&1; then
        echo "docker-engine: dockerd not found; install it first: apt-get install -y docker.io" >&2
        return 1
    fi
    mkdir -p "$STATE"
    if [[ -f "$PIDFILE" ]] && kill -0 "$(cat "$PIDFILE")" 2>/dev/null; then
        echo "docker-engine: dockerd (pid $(cat "$PIDFILE")) is running but not answering yet; waiting" >&2
    else
        # setsid: the daemon must not die with the shell that started it.
        # shellcheck disable=SC2086
        setsid dockerd --bridge=none --iptables=false --ip-masq=false ${PIPERACK_DOCKERD_ARGS:-} \
            >"$LOG" 2>&1 </dev/null &
        echo $! >"$PIDFILE"
    fi
    local i
    for ((i = 0; i < WAIT * 2; i++)); do
        if answers; then
            echo "docker-engine: dockerd up (pid $(cat "$PIDFILE"), log $LOG)" >&2
            return 0
        fi
        if ! kill -0 "$(cat "$PIDFILE")" 2>/dev/null; then
            echo "docker-engine: dockerd exited; last log lines:" >&2
            tail -n 20 "$LOG" >&2 || true
            rm -f "$PIDFILE"
            return 1
        fi
        sleep 0.5
    done
    echo "docker-engine: dockerd did not answer within ${WAIT}s; see $LOG" >&2
    return 1
}

stop() {
    if [[ ! -f "$PIDFILE" ]]; then
        echo "docker-engine: no pid file ($PIDFILE); nothing of ours to stop" >&2
        return 0
    fi
    local pid i
    pid="$(cat "$PIDFILE")"
    if kill -0 "$pid" 2>/dev/null; then
        kill -TERM "$pid"
        # dockerd stops its containers and its containerd child on SIGTERM.
        for ((i = 0; i < 60; i++)); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.5
        done
        if kill -0 "$pid" 2>/dev/null; then
            echo "docker-engine: dockerd (pid $pid) ignored SIGTERM for 30s; sending SIGKILL" >&2
            kill -KILL "$pid" 2>/dev/null || true
        fi
        echo "docker-engine: stopped dockerd (pid $pid)" >&2
    fi
    rm -f "$PIDFILE"
}

case "${1:-}" in
    start) start ;;
    stop) stop ;;
    status) answers ;;
    *) echo "usage: $0 start|stop|status" >&2; exit 2 ;;
esac
