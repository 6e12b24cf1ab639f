#!/usr/bin/env bash
# `make check-chart`: lint the Helm chart, render it with the default and the production-like
# values, and validate every rendered manifest against the Kubernetes schemas (strict: unknown
# fields are errors), offline.
#
# Helm is built once with `go install helm.sh/helm/v3/cmd/helm@$HELM_VERSION` into
# ${MMS_CACHE_DIR:-~/.cache/mms}/helm-$HELM_VERSION/ (~4 min on 2 cores, cold Go cache) and
# reused afterwards. Helm's own cache/config/data folders live in .stack/helm/ (git-ignored).
# kubernetes-validate is a pinned dev dependency; its bundled schemas cover Kubernetes
# 1.25–1.37, and the chart is checked against both ends of that range.
set -euo pipefail

HELM_VERSION="v3.22.0"
KUBE_VERSIONS=("1.25.0" "1.37.0")
REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)"
CHART="$REPO_ROOT/deploy/helm/minio-manager"
CACHE_DIR="${MMS_CACHE_DIR:-$HOME/.cache/mms}"
HELM_DIR="$CACHE_DIR/helm-$HELM_VERSION"
HELM="$HELM_DIR/helm"
UV="${UV:-uv}"
export PATH="$PATH:/usr/local/go/bin:$HOME/go/bin"

if [[ ! -x "$HELM" ]]; then
    command -v go >/dev/null || { echo "check-chart: Go is needed to build helm" >&2; exit 1; }
    echo "check-chart: building helm $HELM_VERSION into $HELM_DIR (once; a few minutes)"
    mkdir -p "$HELM_DIR"
    # Another checkout may be building it at the same moment: one build at a time.
    exec 9>"$HELM_DIR.lock"
    flock 9
    if [[ ! -x "$HELM" ]]; then
        GOBIN="$HELM_DIR.tmp" go install "helm.sh/helm/v3/cmd/helm@$HELM_VERSION"
        mv "$HELM_DIR.tmp/helm" "$HELM" && rmdir "$HELM_DIR.tmp"
    fi
    flock -u 9
fi

STATE="$REPO_ROOT/.stack/helm"
export HELM_CACHE_HOME="$STATE/cache" HELM_CONFIG_HOME="$STATE/config" HELM_DATA_HOME="$STATE/data"
OUT="$STATE/rendered"
rm -rf "$OUT" && mkdir -p "$OUT"

for values in default production; do
    args=()
    [[ "$values" == production ]] && args=(-f "$CHART/values-production.yaml")
    "$HELM" lint --strict "$CHART" "${args[@]}"
    for kube in "${KUBE_VERSIONS[@]}"; do
        "$HELM" template mms "$CHART" "${args[@]}" --kube-version "$kube" >"$OUT/$values-$kube.yaml"
    done
done
for kube in "${KUBE_VERSIONS[@]}"; do
    $UV run kubernetes-validate --strict --quiet -k "$kube" "$OUT"/*-"$kube".yaml
    echo "check-chart: Kubernetes $kube: $(cat "$OUT"/*-"$kube".yaml | grep -c '^kind:') manifests valid"
done
