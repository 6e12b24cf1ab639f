#!/usr/bin/env bash
# `make test-seaweedfs`: the suite against SeaweedFS, in SEAWEEDFS_PARTS parts (default 2) run
# side by side, each part on a SeaweedFS of its own (scripts/stack.sh up seaweedfs N, N = 1..,
# restarted on an empty data directory: a killed run leaves users behind, and SeaweedFS' IAM
# writes slow down with the square of its store) and a Redis database of its own; PostgreSQL
# is shared (every run makes a database of its own). Instance 0 (`make dev`'s) is not touched;
# the instances of the run are stopped at its end.
# A part is a set of whole modules (tests/support/parts.py). Each part's output goes to
# .stack/logs/test-seaweedfs-<i>.log; the summary lines are printed at the end, and the whole
# log of a part that failed. Exit status: 0 when every part passed, else the first failing one.
# Extra arguments are passed to every pytest (e.g. -x, -k, --durations=20).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
UV=${UV:-uv}
PARTS=${SEAWEEDFS_PARTS:-2}
FIRST=${SEAWEEDFS_FIRST_INSTANCE:-1} # the instances used are FIRST .. FIRST+PARTS-1
[[ $PARTS =~ ^[1-9]$ && $FIRST =~ ^[1-9]$ ]] && ((FIRST + PARTS <= 10)) ||
    { echo "SEAWEEDFS_PARTS and SEAWEEDFS_FIRST_INSTANCE: instances 1..9" >&2; exit 2; }
LOGS=.stack/logs

for ((i = 1; i <= PARTS; i++)); do
    n=$((FIRST + i - 1))
    scripts/stack.sh down seaweedfs "$n"
    rm -rf ".stack/seaweedfs-$n/data"
    scripts/stack.sh up seaweedfs "$n"
done

pids=()
# A TERM (e.g. from CI) stops the parts too (each is `uv run`, which passes it to pytest);
# Ctrl-C reaches them directly.
trap 'kill -TERM "${pids[@]}" 2>/dev/null; exit 130' INT TERM
started=$SECONDS
for ((i = 1; i <= PARTS; i++)); do
    (
        eval "$(scripts/stack.sh env seaweedfs "$((FIRST + i - 1))")"
        export MMS_TEST_PART="$i/$PARTS" MMS_TEST_REDIS_DB=$((i == 1 ? 15 : 15 - i)) # 14: bench/harness.py
        exec $UV run pytest -q -p no:cacheprovider tests "$@"
    ) >"$LOGS/test-seaweedfs-$i.log" 2>&1 &
    pids+=($!)
done
echo "test-seaweedfs: $PARTS parts running; logs in $LOGS/test-seaweedfs-*.log"

status=0
for ((i = 1; i <= PARTS; i++)); do
    rc=0
    wait "${pids[$((i - 1))]}" || rc=$?
    log="$LOGS/test-seaweedfs-$i.log"
    if ((rc != 0)); then
        echo "=== part $i/$PARTS failed (exit $rc); its log:"
        cat "$log"
        ((status != 0)) || status=$rc
    fi
    echo "part $i/$PARTS: $(tail -n 1 "$log")"
done
echo "test-seaweedfs: $PARTS parts in $((SECONDS - started))s, load average $(cut -d' ' -f1-3 /proc/loadavg)"
# The instances served this run only; their data directories stay for a look afterwards.
for ((i = 1; i <= PARTS; i++)); do
    scripts/stack.sh down seaweedfs "$((FIRST + i - 1))"
done
exit "$status"
