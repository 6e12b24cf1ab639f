#!/usr/bin/env bash
# `make dev`: the API on http://127.0.0.1:8000 against the local stack, with the KBase auth
# stand-in (scripts/kbase_stub.py) on 127.0.0.1:8081. The stand-in runs in the background and is
# stopped when this script exits (Ctrl-C included); the stack keeps running (`make down` stops it).
set -euo pipefail

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)"
cd "$REPO_ROOT"

# `make` passes UV ("uv", or "python3 -m uv" when uv came from pip and is not on PATH).
read -r -a UV_CMD <<<"${UV:-uv}"
KBASE_HOST=127.0.0.1
KBASE_PORT=${MMS_DEV_KBASE_PORT:-8081}
API_PORT=${MMS_DEV_API_PORT:-8000}
SEED=scripts/kbase_seed.json
STUB_PIDFILE=.stack/run/kbase_stub.pid
STUB_LOG=.stack/logs/kbase_stub.log

die() {
    printf 'dev: ERROR: %s\n' "$*" >&2
    exit 1
}
port_in_use() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

[[ -f $SEED ]] || die "missing $SEED"

# MMS_DEV_STORE=seaweedfs: the same, against SeaweedFS (AWS IAM API) instead of MinIO.
STORE=${MMS_DEV_STORE:-}
[[ -z $STORE || $STORE == minio || $STORE == seaweedfs ]] || die "MMS_DEV_STORE must be minio or seaweedfs"
[[ $STORE == minio ]] && STORE=
scripts/stack.sh up $STORE
eval "$(scripts/stack.sh env $STORE)"
export KBASE_AUTH_URL="http://$KBASE_HOST:$KBASE_PORT/"

# A stand-in left over from a dev session that was killed hard.
if [[ -s $STUB_PIDFILE ]]; then
    old=$(<"$STUB_PIDFILE")
    if [[ -r /proc/$old/cmdline && $(tr '\0' ' ' <"/proc/$old/cmdline") == *kbase_stub.py* ]]; then
        kill -TERM -- "-$old" 2>/dev/null || kill -TERM "$old" 2>/dev/null || true
        sleep 0.5
    fi
    rm -f "$STUB_PIDFILE"
fi
! port_in_use "$KBASE_PORT" || die "port $KBASE_PORT is in use; the KBase stand-in needs it"
! port_in_use "$API_PORT" || die "port $API_PORT is in use; the API needs it"

stop_stub() {
    if [[ -s $STUB_PIDFILE ]]; then
        local pid
        pid=$(<"$STUB_PIDFILE")
        # The stand-in leads its own process group (setsid), so this reaches uv and python.
        kill -TERM -- "-$pid" 2>/dev/null || true
        rm -f "$STUB_PIDFILE"
    fi
}
trap stop_stub EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# setsid: its own process group, so the terminal's Ctrl-C reaches uvicorn only and the trap
# above stops the stand-in in order.
setsid "${UV_CMD[@]}" run python scripts/kbase_stub.py --host "$KBASE_HOST" --port "$KBASE_PORT" \
    --seed "$SEED" </dev/null >"$STUB_LOG" 2>&1 &
echo $! >"$STUB_PIDFILE"

deadline=$((SECONDS + 30))
until port_in_use "$KBASE_PORT"; do
    if ! kill -0 "$(<"$STUB_PIDFILE")" 2>/dev/null || ((SECONDS >= deadline)); then
        tail -n 20 "$STUB_LOG" >&2 || true
        die "the KBase stand-in did not start (log: $STUB_LOG)"
    fi
    sleep 0.2
done

# First BERDL_USER without KBASE_ADMIN, and first KBASE_ADMIN, from the seed.
tokens=$(python3 - "$SEED" <<'PY'
import json
import sys

users = json.load(open(sys.argv[1]))["users"]


def first_token(pick):
    for u in users:
        roles = u.get("customroles", [])
        if not u.get("disabled") and u.get("tokens") and pick(roles):
            return u["user"], u["tokens"][0]["token"]
    return "-", "(none in seed)"


for label, pick in (
    ("user ", lambda r: "BERDL_USER" in r and "KBASE_ADMIN" not in r),
    ("admin", lambda r: "KBASE_ADMIN" in r),
):
    name, token = first_token(pick)
    print(f"  {label} token ({name}): {token}")
PY
)

cat <<EOF

  Swagger UI:  http://127.0.0.1:$API_PORT/docs
  KBase stand-in: $KBASE_AUTH_URL  (log: $STUB_LOG)
$tokens
  In Swagger UI, click "Authorize" and paste a token; with curl send "Authorization: Bearer <token>".
  Ctrl-C stops the API and the stand-in; \`make down\` stops the stack.

EOF

"${UV_CMD[@]}" run uvicorn minio_manager.main:app --host 127.0.0.1 --port "$API_PORT"
