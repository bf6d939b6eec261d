#!/usr/bin/env bash
# Removes what ./deploy.sh made: the Helm release, then the whole Kind cluster.
# The locally built images stay in Docker (the script prints how to remove them).
# Environment overrides: CLUSTER_NAME (soc-demo), RELEASE (soc-agent), DRY_RUN=1.
set -euo pipefail

CLUSTER_NAME="${CLUSTER_NAME:-soc-demo}"
RELEASE="${RELEASE:-soc-agent}"

fail() {
    printf 'teardown.sh: error: %s\n' "$*" >&2
    exit 1
}

run() {
    printf '+ %s\n' "$*"
    if [ "${DRY_RUN:-0}" != 1 ]; then
        "$@"
    fi
}

command -v kind >/dev/null 2>&1 || fail "kind is not on PATH (install: https://kind.sigs.k8s.io/docs/user/quick-start/#installation)"

if ! kind get clusters 2>/dev/null | grep -qx "$CLUSTER_NAME"; then
    echo "No Kind cluster named $CLUSTER_NAME: nothing to remove."
    exit 0
fi

echo "==> Removing release $RELEASE"
if command -v helm >/dev/null 2>&1; then
    if helm status "$RELEASE" --kube-context "kind-$CLUSTER_NAME" >/dev/null 2>&1; then
        run helm uninstall "$RELEASE" --kube-context "kind-$CLUSTER_NAME" ||
            echo "teardown.sh: helm uninstall failed; deleting the cluster removes the release anyway" >&2
    else
        echo "release $RELEASE not found: nothing to uninstall"
    fi
else
    echo "teardown.sh: helm is not on PATH; skipping 'helm uninstall' (deleting the cluster removes the release)" >&2
fi

echo "==> Deleting Kind cluster $CLUSTER_NAME"
run kind delete cluster --name "$CLUSTER_NAME"

echo
echo "Done. The images are still in Docker; remove them with:"
echo "  docker rmi \$(docker images --format '{{.Repository}}:{{.Tag}}' | grep -E '^soc-(backend|frontend):')"
