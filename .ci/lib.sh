# Shared by the .ci/*.sh service scripts (sourced). $STATE and $ENVFILE are set by the caller.

set_env() {  # set_env KEY VALUE: replace the KEY line in $ENVFILE
    local tmp
    tmp="$(mktemp "$STATE/env.XXXXXX")"
    { grep -v "^$1=" "$ENVFILE" 2>/dev/null || true; echo "$1=$2"; } >"$tmp"
    mv "$tmp" "$ENVFILE"
}

unset_env() {  # unset_env KEY: drop the KEY line from $ENVFILE
    [[ -f "$ENVFILE" ]] || return 0
    local tmp
    tmp="$(mktemp "$STATE/env.XXXXXX")"
    grep -v "^$1=" "$ENVFILE" >"$tmp" || true
    mv "$tmp" "$ENVFILE"
}
