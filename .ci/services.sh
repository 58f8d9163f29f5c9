#!/usr/bin/env bash
# CI services for the `invoke pull`, `publish` and `outdated` tests: moto's S3 server, a pypiserver
# package index open to all, and a second pypiserver that takes uploads only with a password
# (htpasswd), all on 127.0.0.1 at free ports.
#
#   .ci/services.sh start   # idempotent; records pids under $PIPERACK_CI_STATE/services/ and writes
#                           #   PIPERACK_TEST_S3_ENDPOINT=http://127.0.0.1:PORT
#                           #   PIPERACK_TEST_INDEX_URL=http://127.0.0.1:PORT/simple/
#                           #   PIPERACK_TEST_INDEX_DIR=<the folder pypiserver serves; tests put sdists there>
#                           #   PIPERACK_TEST_UPLOAD_URL=http://127.0.0.1:PORT/   (upload endpoint; the
#                           #     simple pages are under PORT/simple/, readable without a password)
#                           #   PIPERACK_TEST_UPLOAD_USER, PIPERACK_TEST_UPLOAD_PASSWORD (random per start)
#                           #   PIPERACK_TEST_UPLOAD_DIR=<the folder it serves; a test tampers with files there>
#                           # to $PIPERACK_CI_STATE/env
#   .ci/services.sh stop    # kills what start started, by pid, and removes those lines
#
# The tests start their own servers when these variables are absent (tests/test_pull.py fixtures).
# moto_server and pypi-server come from the kit's virtualenv (.venv, or $PIPERACK_KIT_VENV, or PATH);
# pypiserver reads the htpasswd file with passlib (requirements-dev.txt), which also writes it here.
set -euo pipefail

KIT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
STATE="${PIPERACK_CI_STATE:-/tmp/piperack-ci}"
DIR="$STATE/services"
ENVFILE="$STATE/env"
VENV_BIN="${PIPERACK_KIT_VENV:-$KIT/.venv}/bin"

log() { echo "ci/services: $*" >&2; }

find_tool() {
    if [[ -x "$VENV_BIN/$1" ]]; then echo "$VENV_BIN/$1"; else command -v "$1"; fi
}

free_port() {
    "$(find_tool python3 || command -v python3)" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# shellcheck source=lib.sh
. "$KIT/.ci/lib.sh"

alive() { [[ -f "$DIR/$1.pid" ]] && kill -0 "$(cat "$DIR/$1.pid")" 2>/dev/null; }

wait_port() {  # wait_port PORT NAME
    for _ in $(seq 1 150); do
        if (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; then return 0; fi
        alive "$2" || { log "$2 exited; see $DIR/$2.log"; cat "$DIR/$2.log" >&2 || true; return 1; }
        sleep 0.2
    done
    log "$2 did not listen on 127.0.0.1:$1"; return 1
}

start_one() {  # start_one NAME PORT CMD...
    local name="$1" port="$2"; shift 2
    if alive "$name"; then log "$name already running (pid $(cat "$DIR/$name.pid"))"; return 0; fi
    setsid "$@" >"$DIR/$name.log" 2>&1 </dev/null &
    echo $! >"$DIR/$name.pid"
    echo "$port" >"$DIR/$name.port"
    wait_port "$port" "$name"
    log "$name on 127.0.0.1:$port (pid $(cat "$DIR/$name.pid"))"
}

start() {
    mkdir -p "$DIR" "$DIR/index"
    local port
    if ! alive moto; then
        port="$(free_port)"
        start_one moto "$port" "$(find_tool moto_server)" -H 127.0.0.1 -p "$port"
    fi
    set_env PIPERACK_TEST_S3_ENDPOINT "http://127.0.0.1:$(cat "$DIR/moto.port")"
    if ! alive pypiserver; then
        port="$(free_port)"
        start_one pypiserver "$port" "$(find_tool pypi-server)" run -i 127.0.0.1 -p "$port" \
            --disable-fallback -a . -P . "$DIR/index"
    fi
    set_env PIPERACK_TEST_INDEX_URL "http://127.0.0.1:$(cat "$DIR/pypiserver.port")/simple/"
    set_env PIPERACK_TEST_INDEX_DIR "$DIR/index"
    start_upload_index
}

start_upload_index() {  # pypiserver requiring a password for uploads (-a update -P htpasswd)
    mkdir -p "$DIR/upload-index"
    if ! alive pypiserver-auth; then
        local port user password
        port="$(free_port)"
        user="piperack-ci"
        password="$("$(find_tool python3)" -c 'import secrets; print(secrets.token_urlsafe(18))')"
        PIPERACK_HTPASSWD_PASSWORD="$password" "$(find_tool python3)" -c '
import os, sys
from passlib.apache import HtpasswdFile
ht = HtpasswdFile(sys.argv[1], new=True)
ht.set_password(sys.argv[2], os.environ["PIPERACK_HTPASSWD_PASSWORD"])
ht.save()' "$DIR/upload-index.htpasswd" "$user"
        printf '%s\n%s\n' "$user" "$password" >"$DIR/upload-index.credentials"
        chmod 600 "$DIR/upload-index.htpasswd" "$DIR/upload-index.credentials"
        start_one pypiserver-auth "$port" "$(find_tool pypi-server)" run -i 127.0.0.1 -p "$port" \
            --disable-fallback -a update -P "$DIR/upload-index.htpasswd" "$DIR/upload-index"
    fi
    set_env PIPERACK_TEST_UPLOAD_URL "http://127.0.0.1:$(cat "$DIR/pypiserver-auth.port")/"
    set_env PIPERACK_TEST_UPLOAD_USER "$(sed -n 1p "$DIR/upload-index.credentials")"
    set_env PIPERACK_TEST_UPLOAD_PASSWORD "$(sed -n 2p "$DIR/upload-index.credentials")"
    set_env PIPERACK_TEST_UPLOAD_DIR "$DIR/upload-index"
}

stop_one() {
    local name="$1" pid
    [[ -f "$DIR/$name.pid" ]] || return 0
    pid="$(cat "$DIR/$name.pid")"
    if kill -0 "$pid" 2>/dev/null; then
        kill "$pid" 2>/dev/null || true
        for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        kill -0 "$pid" 2>/dev/null && kill -9 "$pid" 2>/dev/null || true
        log "stopped $name (pid $pid)"
    fi
    rm -f "$DIR/$name.pid" "$DIR/$name.port"
}

stop() {
    stop_one moto
    stop_one pypiserver
    stop_one pypiserver-auth
    rm -rf "$DIR/index" "$DIR/upload-index"
    rm -f "$DIR/upload-index.htpasswd" "$DIR/upload-index.credentials"
    unset_env PIPERACK_TEST_S3_ENDPOINT
    unset_env PIPERACK_TEST_INDEX_URL
    unset_env PIPERACK_TEST_INDEX_DIR
    unset_env PIPERACK_TEST_UPLOAD_URL
    unset_env PIPERACK_TEST_UPLOAD_USER
    unset_env PIPERACK_TEST_UPLOAD_PASSWORD
    unset_env PIPERACK_TEST_UPLOAD_DIR
}

case "${1:-}" in
    start) start ;;
    stop) stop ;;
    *) echo "usage: $0 start|stop" >&2; exit 2 ;;
esac
