#!/usr/bin/env bash
# Build every service's image, ship it, apply an overlay and wait until it has rolled out. One command:
#
#   scripts/build-and-deploy.sh                 # kind: images `kind load`ed, k8s/overlays/dev
#   DEVENV_REGISTRY=registry.example.com/team scripts/build-and-deploy.sh
#                                               # registry: images pushed, k8s/overlays/prod
#
# Settings (environment; .env.example documents them too):
#   DEVENV_REGISTRY        push to this registry and deploy prod; unset: load into kind and deploy dev
#   DEVENV_KIND_CLUSTER    the kind cluster (default devenv; create it with `kind create cluster --name devenv`)
#   DEVENV_OVERLAY         the kustomize overlay (default k8s/overlays/dev, or k8s/overlays/prod with a registry)
#   DEVENV_IMAGE_TAG       image tag (default: the git commit, plus -dirty-<time> with uncommitted changes)
#   DEVENV_KUBE_CONTEXT    kubectl context (default kind-<cluster> for kind, the current context with a registry)
#   DEVENV_NAMESPACE       namespace of the overlay (default devenv)
#   DEVENV_ROLLOUT_TIMEOUT how long each rollout may take (default 300s)
#   DEVENV_BASE_IMAGE      the Dockerfile's BASE_IMAGE build arg (default: the Dockerfile's own)
#
# Order: build → load/push → Secret and ConfigMap from .env (scripts/setup-from-env.sh into the
# git-ignored k8s/generated/) → namespace → Secret and ConfigMap → the overlay, with the new
# image tags set by kustomize `images:` (with a registry: scripts/set-registry.sh, which the prod
# overlay needs) → `kubectl rollout status` for Redis and every Deployment.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
REGISTRY="${DEVENV_REGISTRY:-}"
REGISTRY="${REGISTRY%/}"
CLUSTER="${DEVENV_KIND_CLUSTER:-devenv}"
NAMESPACE="${DEVENV_NAMESPACE:-devenv}"
TIMEOUT="${DEVENV_ROLLOUT_TIMEOUT:-300s}"
if [[ -n "$REGISTRY" ]]; then
  OVERLAY="${DEVENV_OVERLAY:-$ROOT/k8s/overlays/prod}"
  CONTEXT="${DEVENV_KUBE_CONTEXT:-}"
else
  OVERLAY="${DEVENV_OVERLAY:-$ROOT/k8s/overlays/dev}"
  CONTEXT="${DEVENV_KUBE_CONTEXT:-kind-$CLUSTER}"
fi
GENERATED="$ROOT/k8s/generated"

die() { echo "build-and-deploy.sh: error: $*" >&2; exit 1; }
step() { echo "==> $*" >&2; }

case "${1:-}" in
  -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
  "") ;;
  *) die "no arguments expected (every service is deployed); see --help" ;;
esac

# -- preflight ---------------------------------------------------------------------------------

for tool in docker kubectl; do
  command -v "$tool" >/dev/null || die "$tool not found on PATH"
done
if [[ -z "$REGISTRY" ]]; then
  command -v kind >/dev/null || die "kind not found on PATH: install kind (https://kind.sigs.k8s.io), or set DEVENV_REGISTRY to push to a registry"
  kind get clusters 2>/dev/null | grep -qx "$CLUSTER" ||
    die "no kind cluster named $CLUSTER; create it with: kind create cluster --name $CLUSTER"
fi
[[ -d "$OVERLAY" ]] || die "no overlay at $OVERLAY"

kube() {
  if [[ -n "$CONTEXT" ]]; then kubectl --context "$CONTEXT" "$@"; else kubectl "$@"; fi
}

services=()
for file in "$ROOT"/services/*/service.py; do
  package="$(basename "$(dirname "$file")")"
  services+=("${package//_/-}")
done
[[ ${#services[@]} -gt 0 ]] || die "no services/<name>/service.py under $ROOT"

if [[ -n "${DEVENV_IMAGE_TAG:-}" ]]; then
  TAG="$DEVENV_IMAGE_TAG"
elif git -C "$ROOT" rev-parse --short HEAD >/dev/null 2>&1; then
  TAG="$(git -C "$ROOT" rev-parse --short HEAD)"
  # (the registry component is left out: set-registry.sh below rewrites it on every deploy)
  [[ -z "$(git -C "$ROOT" status --porcelain --untracked-files=no -- . ':!k8s/overlays/prod/registry')" ]] ||
    TAG="$TAG-dirty-$(date +%Y%m%d%H%M%S)"
else
  TAG="dev-$(date +%Y%m%d%H%M%S)"
fi
image_of() { echo "${REGISTRY:+$REGISTRY/}devenv/$1:$TAG"; }

# -- build and ship ----------------------------------------------------------------------------

build_args=()
[[ -z "${DEVENV_BASE_IMAGE:-}" ]] || build_args+=(--build-arg "BASE_IMAGE=$DEVENV_BASE_IMAGE")
for service in "${services[@]}"; do
  step "building $(image_of "$service")"
  docker build --build-arg "SERVICE=$service" ${build_args[@]+"${build_args[@]}"} \
    --tag "$(image_of "$service")" --file "$ROOT/Dockerfile" "$ROOT"
done
for service in "${services[@]}"; do
  if [[ -n "$REGISTRY" ]]; then
    step "pushing $(image_of "$service")"
    docker push "$(image_of "$service")"
  else
    step "loading $(image_of "$service") into kind cluster $CLUSTER"
    kind load docker-image --name "$CLUSTER" "$(image_of "$service")"
  fi
done

# -- configuration, then the overlay -------------------------------------------------------------

step "Secret and ConfigMap from .env"
"$ROOT/scripts/setup-from-env.sh" --out "$GENERATED" --namespace "$NAMESPACE"

if [[ -n "$REGISTRY" ]]; then  # the prod overlay's registry Component (kustomize images:, no sed)
  DEVENV_REGISTRY="$REGISTRY" DEVENV_IMAGE_TAG="$TAG" "$ROOT/scripts/set-registry.sh"
fi
# The overlay with this run's images: a throwaway kustomization over it whose `images:` name
# each service's image and tag (the same transformer the overlays use; no rewriting of YAML).
wrapper="$GENERATED/deploy"
mkdir -p "$wrapper"
{
  echo "# Written by scripts/build-and-deploy.sh for one deploy (tag $TAG); git-ignored."
  echo "apiVersion: kustomize.config.k8s.io/v1beta1"
  echo "kind: Kustomization"
  echo "resources:"
  echo "  - $(realpath --relative-to="$wrapper" "$OVERLAY")"
  echo "images:"
  for service in "${services[@]}"; do
    image="$(image_of "$service")"
    printf '  - name: devenv/%s\n    newName: %s\n    newTag: "%s"\n' "$service" "${image%:*}" "$TAG"
  done
} >"$wrapper/kustomization.yaml"

rendered="$GENERATED/rendered.yaml"
step "rendering $OVERLAY with tag $TAG"
kubectl kustomize "$wrapper" >"$rendered.tmp"
mv -f "$rendered.tmp" "$rendered"

step "applying to ${CONTEXT:-the current context}, namespace $NAMESPACE"
kubectl create namespace "$NAMESPACE" --dry-run=client -o yaml | kube apply -f -
kube apply -f "$GENERATED/secret.yaml" -f "$GENERATED/configmap.yaml"
kube apply -f "$rendered"

# -- wait ------------------------------------------------------------------------------------------

workloads=(statefulset/redis)
for service in "${services[@]}"; do workloads+=("deployment/$service"); done
for workload in "${workloads[@]}"; do
  step "waiting for $workload"
  if ! kube rollout status "$workload" --namespace "$NAMESPACE" --timeout "$TIMEOUT"; then
    echo "--- pods:" >&2
    kube get pods --namespace "$NAMESPACE" -o wide >&2 || true
    echo "--- recent events:" >&2
    kube get events --namespace "$NAMESPACE" --sort-by=.lastTimestamp 2>&1 | tail -n 20 >&2 || true
    die "$workload did not roll out within $TIMEOUT"
  fi
done

step "deployed $TAG to ${CONTEXT:-the current context}, namespace $NAMESPACE"
echo "try: kubectl${CONTEXT:+ --context $CONTEXT} --namespace $NAMESPACE port-forward service/jd-classifier-service 8101:8080" >&2
