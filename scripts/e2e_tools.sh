#!/usr/bin/env bash
# Installs, once per machine, the real programs the end-to-end tests drive, and caches them
# outside the clone so a second run starts in seconds:
#
#   $E2E_CACHE/jh/      venv: JupyterHub + JupyterLab (the hub and the single-user servers)
#   $E2E_CACHE/chp/     npm prefix: configurable-http-proxy (the hub's proxy)
#   $E2E_CACHE/spark/   venv: pyspark + pyarrow (a notebook user's Spark)
#   $E2E_CACHE/ivy/     Ivy cache: org.apache.hadoop:hadoop-aws and the AWS SDK bundle
#   $E2E_CACHE/spark-jars.txt   the resolved jar paths, comma-separated (spark.jars)
#
# E2E_CACHE defaults to ${MMS_CACHE_DIR:-~/.cache/mms}/e2e. Each part is done when its stamp
# file holds the pinned versions below; changing a version reinstalls only that part.
# Usage: scripts/e2e_tools.sh [jh|spark|all]   (default all); prints `export` lines with --env.
set -euo pipefail

JUPYTERHUB_VERSION=6.1.1
JUPYTERLAB_VERSION=4.6.6
CHP_VERSION=5.3.0
PYSPARK_VERSION=4.3.0
PYARROW_SPEC="pyarrow>=15"
# Must match the Hadoop client bundled with pyspark (3.5.0 for pyspark 4.3.0).
HADOOP_AWS="org.apache.hadoop:hadoop-aws:3.5.0"

E2E_CACHE="${MMS_E2E_CACHE:-${MMS_CACHE_DIR:-$HOME/.cache/mms}/e2e}"
# The venvs need a real interpreter path: `python3.11` may be a pyenv shim.
PYTHON="${MMS_E2E_PYTHON:-$(python3.11 -c 'import sys; print(sys.executable)' 2>/dev/null || command -v python3)}"

log() { printf 'e2e-tools: %s\n' "$*" >&2; }
die() {
    printf 'e2e-tools: ERROR: %s\n' "$*" >&2
    exit 1
}

stamp_ok() { [[ -f $1 && $(<"$1") == "$2" ]]; }

install_jh() {
    local venv=$E2E_CACHE/jh want="jupyterhub==$JUPYTERHUB_VERSION jupyterlab==$JUPYTERLAB_VERSION"
    if ! stamp_ok "$venv/.mms-stamp" "$want"; then
        log "installing $want into $venv (first time: a few minutes)"
        rm -rf "$venv"
        "$PYTHON" -m venv "$venv"
        "$venv/bin/pip" install --quiet "jupyterhub==$JUPYTERHUB_VERSION" \
            "jupyterlab==$JUPYTERLAB_VERSION" httpx
        printf '%s' "$want" >"$venv/.mms-stamp"
    fi
    local chp=$E2E_CACHE/chp
    if ! stamp_ok "$chp/.mms-stamp" "$CHP_VERSION"; then
        log "installing configurable-http-proxy@$CHP_VERSION into $chp"
        rm -rf "$chp"
        mkdir -p "$chp"
        npm install --silent --no-fund --no-audit --prefix "$chp" \
            "configurable-http-proxy@$CHP_VERSION" >/dev/null
        printf '%s' "$CHP_VERSION" >"$chp/.mms-stamp"
    fi
}

install_spark() {
    local venv=$E2E_CACHE/spark want="pyspark==$PYSPARK_VERSION $PYARROW_SPEC"
    if ! stamp_ok "$venv/.mms-stamp" "$want"; then
        log "installing $want into $venv (first time: pyspark builds from its sdist, minutes)"
        rm -rf "$venv"
        "$PYTHON" -m venv "$venv"
        "$venv/bin/pip" install --quiet "pyspark==$PYSPARK_VERSION" "$PYARROW_SPEC"
        printf '%s' "$want" >"$venv/.mms-stamp"
    fi
    local jars=$E2E_CACHE/spark-jars.txt ivy=$E2E_CACHE/ivy
    if ! stamp_ok "$E2E_CACHE/.jars-stamp" "$HADOOP_AWS"; then
        log "resolving $HADOOP_AWS from Maven Central into $ivy (first time: ~700 MB)"
        mkdir -p "$ivy"
        # A throw-away local session whose only job is Ivy's resolution; it lists what it fetched.
        "$venv/bin/python" - "$HADOOP_AWS" "$ivy" "$jars" <<'PY'
import sys
from pathlib import Path

from pyspark.sql import SparkSession

package, ivy, out = sys.argv[1:4]
spark = (
    SparkSession.builder.master("local[1]")
    .config("spark.ui.enabled", "false")
    .config("spark.jars.packages", package)
    .config("spark.jars.ivy", ivy)
    .getOrCreate()
)
spark.stop()
found = sorted(str(p) for p in (Path(ivy) / "jars").glob("*.jar"))
if not any("hadoop-aws" in p for p in found):
    sys.exit(f"hadoop-aws was not resolved into {ivy}/jars")
Path(out).write_text(",".join(found))
PY
        printf '%s' "$HADOOP_AWS" >"$E2E_CACHE/.jars-stamp"
    fi
}

print_env() {
    printf 'export MMS_E2E_CACHE=%q\n' "$E2E_CACHE"
    printf 'export MMS_E2E_JH_VENV=%q\n' "$E2E_CACHE/jh"
    printf 'export MMS_E2E_CHP=%q\n' "$E2E_CACHE/chp/node_modules/.bin/configurable-http-proxy"
    printf 'export MMS_E2E_SPARK_VENV=%q\n' "$E2E_CACHE/spark"
    printf 'export MMS_E2E_SPARK_JARS_FILE=%q\n' "$E2E_CACHE/spark-jars.txt"
}

mkdir -p "$E2E_CACHE"
case "${1:-all}" in
    jh) install_jh ;;
    spark) install_spark ;;
    all) install_jh && install_spark ;;
    --env) print_env ;;
    *) die "usage: $0 [jh|spark|all|--env]" ;;
esac
