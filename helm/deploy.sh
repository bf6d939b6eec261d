#!/usr/bin/env bash
# Local development on Kind: ./deploy.sh (from the helm/ folder or anywhere).
#   1. check prerequisites (kind, kubectl, helm, docker)
#   2. create the Kind cluster "soc-demo" with ingress ports (reused when it already exists)
#   3. build the backend and frontend images and load them into Kind
#   4. install the nginx ingress controller
#   5. deploy the SOC Agent System with Helm (install, or upgrade when the release exists)
#   6. verify every pod is running (and run `helm test`)
# Then open http://localhost:8080 (login analyst / analyst).
#
# Environment overrides: CLUSTER_NAME (soc-demo), RELEASE (soc-agent), IMAGE_TAG (default:
# <appVersion>-<first 12 hex digits of the built backend image's ID>, so a code change is a new tag
# and rolls the pods, and an unchanged build keeps its tag), INGRESS_NGINX_VERSION
# (controller-v1.12.1), HELM_TIMEOUT (10m), DRY_RUN=1 prints the commands instead of running them.
set -Eeuo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO_ROOT="$(dirname "$HERE")"
CHART="$HERE/charts/soc-agent"
CLUSTER_NAME="${CLUSTER_NAME:-soc-demo}"
RELEASE="${RELEASE:-soc-agent}"
INGRESS_NGINX_VERSION="${INGRESS_NGINX_VERSION:-controller-v1.12.1}"
HELM_TIMEOUT="${HELM_TIMEOUT:-10m}"
APP_VERSION="$(sed -n 's/^appVersion: *"\{0,1\}\([^"]*\)"\{0,1\}$/\1/p' "$CHART/Chart.yaml")"
IMAGE_TAG="${IMAGE_TAG:-}"
INGRESS_MANIFEST="https://raw.githubusercontent.com/kubernetes/ingress-nginx/${INGRESS_NGINX_VERSION}/deploy/static/provider/kind/deploy.yaml"
STEP="starting"

step() {
    STEP="$1"
    printf '\n==> %s\n' "$1"
}

fail() {
    printf 'deploy.sh: error: %s\n' "$*" >&2
    exit 1
}

on_error() {
    local status=$?
    printf '\ndeploy.sh: failed during "%s" (exit %s). Fix the message above and run ./deploy.sh again;\n' "$STEP" "$status" >&2
    printf 'the cluster and images already made are reused. ./teardown.sh removes everything.\n' >&2
    exit "$status"
}
trap on_error ERR

run() {
    printf '+ %s\n' "$*"
    if [ "${DRY_RUN:-0}" != 1 ]; then
        "$@"
    fi
}

install_hint() {
    case "$1" in
        kind) echo "https://kind.sigs.k8s.io/docs/user/quick-start/#installation" ;;
        kubectl) echo "https://kubernetes.io/docs/tasks/tools/" ;;
        helm) echo "https://helm.sh/docs/intro/install/ (Helm 3.8 or newer)" ;;
        docker) echo "https://docs.docker.com/get-docker/" ;;
    esac
}

check_prerequisites() {
    step "1/6 Checking prerequisites (kind, kubectl, helm, docker)"
    local missing=""
    for tool in kind kubectl helm docker; do
        if ! command -v "$tool" >/dev/null 2>&1; then
            missing="$missing $tool"
            printf 'deploy.sh: missing: %s (install: %s)\n' "$tool" "$(install_hint "$tool")" >&2
        fi
    done
    if [ -n "$missing" ]; then
        fail "not found on PATH:$missing"
    fi
    if ! docker info >/dev/null 2>&1; then
        fail "docker is installed but its engine does not answer ('docker info' failed): start Docker and retry"
    fi
    [ -n "$APP_VERSION" ] || fail "could not read appVersion from $CHART/Chart.yaml"
    echo "kind, kubectl, helm and docker found"
}

create_cluster() {
    step "2/6 Creating the Kind cluster \"$CLUSTER_NAME\" with ingress ports 8080/8443"
    if kind get clusters 2>/dev/null | grep -qx "$CLUSTER_NAME"; then
        echo "cluster $CLUSTER_NAME already exists: reusing it"
    else
        run kind create cluster --name "$CLUSTER_NAME" --config "$HERE/kind-config.yaml" --wait 120s
    fi
    run kubectl config use-context "kind-$CLUSTER_NAME"
}

build_images() {
    step "3/6 Building and loading the images soc-backend and soc-frontend"
    run docker build -t "soc-backend:$APP_VERSION" "$REPO_ROOT"
    if [ -z "$IMAGE_TAG" ]; then
        # The same tag for every build would leave the pods on the old image (nothing in the
        # Deployment changes); the image ID changes exactly when the code does.
        local id="dry-run-id"
        if [ "${DRY_RUN:-0}" != 1 ]; then
            id="$(docker image inspect --format '{{.Id}}' "soc-backend:$APP_VERSION")"
            id="${id#sha256:}"
        fi
        [ -n "$id" ] || fail "could not read the ID of soc-backend:$APP_VERSION; set IMAGE_TAG"
        IMAGE_TAG="$APP_VERSION-${id:0:12}"
    fi
    echo "images are tagged $IMAGE_TAG"
    run docker tag "soc-backend:$APP_VERSION" "soc-backend:$IMAGE_TAG"
    run docker build --build-arg "BACKEND_IMAGE=soc-backend:$IMAGE_TAG" -t "soc-frontend:$IMAGE_TAG" "$REPO_ROOT/docker/frontend"
    run kind load docker-image "soc-backend:$IMAGE_TAG" "soc-frontend:$IMAGE_TAG" --name "$CLUSTER_NAME"
}

install_ingress() {
    step "4/6 Installing the nginx ingress controller ($INGRESS_NGINX_VERSION)"
    run kubectl apply -f "$INGRESS_MANIFEST"
    # Waits for the Deployment apply just created; `kubectl wait pod -l ...` right after apply
    # fails with "no matching resources" when the pod does not exist yet.
    run kubectl rollout status deployment/ingress-nginx-controller --namespace ingress-nginx --timeout=180s
}

deploy_release() {
    step "5/6 Deploying release \"$RELEASE\" with Helm"
    local action=install
    if helm status "$RELEASE" >/dev/null 2>&1; then
        action=upgrade
    fi
    run helm "$action" "$RELEASE" "$CHART" \
        --set "backend.image.tag=$IMAGE_TAG" --set "frontend.image.tag=$IMAGE_TAG" \
        --wait --timeout "$HELM_TIMEOUT"
}

verify() {
    step "6/6 Verifying the pods"
    run kubectl rollout status "deployment/$RELEASE-backend" --timeout=180s
    run kubectl get pods -l "app.kubernetes.io/instance=$RELEASE" -o wide
    run kubectl get hpa,ingress -l "app.kubernetes.io/instance=$RELEASE"
    run helm test "$RELEASE" --timeout 2m
}

main() {
    cd "$HERE"
    check_prerequisites
    create_cluster
    build_images
    install_ingress
    deploy_release
    verify
    STEP="done"
    printf '\nSOC Agent System is running.\n'
    printf '  Dashboard:  http://localhost:8080   (login: analyst / analyst)\n'
    printf '  Logs:       kubectl logs -l app=soc-backend --tail=50\n'
    printf '  Remove it:  ./teardown.sh\n'
}

main "$@"
