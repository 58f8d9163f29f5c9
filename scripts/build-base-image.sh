#!/usr/bin/env bash
# Build (or reuse) the offline Python base image: debootstrap minbase + python3 + python3-venv,
# imported into the local Docker engine. Prints the image tag on stdout; everything else on stderr.
#
#   scripts/build-base-image.sh [--suite SUITE] [--mirror URL] [--arch ARCH] [--force]
#
# Defaults: the host's Debian suite (bookworm here), http://deb.debian.org/debian, the host's
# architecture. See docker/offline-base/README.md.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
KIT="$(cd "$HERE/.." && pwd)"
RECIPE="$KIT/docker/offline-base"
REPO="${PIPERACK_BASE_REPO:-piperack/python-offline}"

suite=""
mirror="${PIPERACK_DEBIAN_MIRROR:-http://deb.debian.org/debian}"
arch=""
force=0
while [[ $# -gt 0 ]]; do
    case "$1" in
        --suite) suite="$2"; shift 2 ;;
        --mirror) mirror="$2"; shift 2 ;;
        --arch) arch="$2"; shift 2 ;;
        --force) force=1; shift ;;
        -h|--help) sed -n '2,9p' "$0"; exit 0 ;;
        *) echo "build-base-image: unknown option $1" >&2; exit 2 ;;
    esac
done

log() { echo "build-base-image: $*" >&2; }

if [[ -z "$suite" ]]; then
    # shellcheck disable=SC1091
    suite="$(. /etc/os-release 2>/dev/null && echo "${VERSION_CODENAME:-}")"
    [[ -n "$suite" ]] || { log "cannot tell the host's Debian suite; pass --suite (e.g. bookworm)"; exit 2; }
fi
[[ -n "$arch" ]] || arch="$(dpkg --print-architecture)"

command -v docker >/dev/null 2>&1 || { log "docker not found (apt-get install -y docker.io)"; exit 1; }
docker info >/dev/null 2>&1 || { log "no Docker engine answers; start one: scripts/docker-engine.sh start"; exit 1; }

packages="$(grep -v '^\s*#' "$RECIPE/packages.txt" | tr -s ' \n' ',' | sed 's/^,//; s/,$//')"

# The recipe hash: everything that decides the image's content.
hash="$( { echo "suite=$suite arch=$arch"; cat "$0" "$RECIPE/packages.txt"; } | sha256sum | cut -c1-12)"

existing="$(docker images -q --filter "label=org.piperack.recipe=$hash" "$REPO" | head -n1)"
if [[ -n "$existing" && $force -eq 0 ]]; then
    tag="$(docker image inspect -f '{{index .Config.Labels "org.piperack.tag"}}' "$existing")"
    if [[ -n "$tag" ]] && docker image inspect "$tag" >/dev/null 2>&1; then
        log "reusing $tag (recipe $hash)"
        echo "$tag"
        exit 0
    fi
fi

command -v debootstrap >/dev/null 2>&1 || { log "debootstrap not found (apt-get install -y debootstrap)"; exit 1; }
[[ $(id -u) -eq 0 ]] || { log "debootstrap needs root"; exit 1; }

work="$(mktemp -d /tmp/piperack-base.XXXXXX)"
trap 'rm -rf "$work"' EXIT
root="$work/rootfs"
start=$SECONDS

log "debootstrap $suite ($arch, minbase + $packages) from $mirror"
debootstrap --variant=minbase --arch="$arch" --include="$packages" "$suite" "$root" "$mirror" \
    >"$work/debootstrap.log" 2>&1 || { tail -n 30 "$work/debootstrap.log" >&2; log "debootstrap failed"; exit 1; }

# Slim down: package caches and lists, docs, man pages; keep the dpkg database.
rm -rf "$root"/var/cache/apt/* "$root"/var/lib/apt/lists/* "$root"/var/log/* \
       "$root"/usr/share/doc/* "$root"/usr/share/man/* "$root"/usr/share/info/* \
       "$root"/tmp/* "$root"/var/tmp/*
# Same sources as the build, so `apt-get update` inside works where a mirror is reachable.
echo "deb $mirror $suite main" >"$root/etc/apt/sources.list"

pyver="$(chroot "$root" python3 -c 'import sys; print("%d.%d" % sys.version_info[:2])')"
tag="$REPO:$pyver-$hash"

log "importing as $tag"
tar --numeric-owner -C "$root" -c . | docker import \
    --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --change 'ENV LANG=C.UTF-8' \
    --change 'CMD ["python3"]' \
    --change "LABEL org.piperack.recipe=$hash org.piperack.tag=$tag org.piperack.suite=$suite org.piperack.python=$pyver" \
    - "$tag" >/dev/null

docker run --rm --network none "$tag" python3 -c 'import venv, ensurepip, sys; print(sys.version)' >&2
log "built $tag in $((SECONDS - start)) s"
echo "$tag"
