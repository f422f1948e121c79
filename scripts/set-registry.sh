#!/usr/bin/env bash
# Choose the image registry of the prod overlay: writes the kustomize Component
# k8s/overlays/prod/registry/kustomization.yaml (tracked: commit it if the registry is your team's
# for good; the committed one is a placeholder that stops the render) whose `images:` point every service's
# image at $DEVENV_REGISTRY/devenv/<service>:$DEVENV_IMAGE_TAG, and Redis's at
# $DEVENV_REGISTRY/redis (same tag as k8s/base/redis.yaml: mirror it there), so prod pulls nothing
# from Docker Hub. k8s/overlays/prod includes it, so until this has run the prod overlay does not
# render (rather than pulling from Docker Hub): kustomize's error says to run this script.
#
#   DEVENV_REGISTRY=registry.example.com/team [DEVENV_IMAGE_TAG=1.2.3] scripts/set-registry.sh [--out DIR]
#
#   DEVENV_REGISTRY   the registry (and path) the images are pushed to; required (or in .env)
#   DEVENV_IMAGE_TAG  the tag (default: the git commit, short)
#   --out             where the Component goes (default: k8s/overlays/prod/registry)
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
OUT="$ROOT/k8s/overlays/prod/registry"
die() { echo "set-registry.sh: error: $*" >&2; exit 1; }

while [[ $# -gt 0 ]]; do
  case "$1" in
    --out) OUT="${2:?--out needs a directory}"; shift 2 ;;
    --out=*) OUT="${1#*=}"; shift ;;
    -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) die "unknown argument: $1 (see --help)" ;;
  esac
done

from_dotenv() {  # $1: key; the value of an unquoted KEY=value line in .env, if any
  [[ -f "$ROOT/.env" ]] || return 0
  sed -n -E "s/^[[:space:]]*(export[[:space:]]+)?$1[[:space:]]*=[[:space:]]*['\"]?([^'\"#[:space:]]*).*/\2/p" "$ROOT/.env" | tail -n 1
}

REGISTRY="${DEVENV_REGISTRY:-$(from_dotenv DEVENV_REGISTRY)}"
REGISTRY="${REGISTRY%/}"
[[ -n "$REGISTRY" ]] || die "DEVENV_REGISTRY is not set: name the registry the prod images come from, e.g. DEVENV_REGISTRY=registry.example.com/team"
[[ "$REGISTRY" =~ ^[a-z0-9]([a-z0-9._:-]*[a-z0-9])?(/[a-z0-9]([a-z0-9._-]*[a-z0-9])?)*$ ]] ||
  die "DEVENV_REGISTRY=$REGISTRY is not a registry name (lowercase host[:port][/path], e.g. registry.example.com/team)"

TAG="${DEVENV_IMAGE_TAG:-$(from_dotenv DEVENV_IMAGE_TAG)}"
if [[ -z "$TAG" ]]; then
  TAG="$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null)" || die "DEVENV_IMAGE_TAG is not set and $ROOT is not a git checkout"
fi
[[ "$TAG" =~ ^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$ ]] || die "DEVENV_IMAGE_TAG=$TAG is not a valid image tag"

services=()
for file in "$ROOT"/services/*/service.py; do
  [[ -e "$file" ]] || continue
  package="$(basename "$(dirname "$file")")"
  services+=("${package//_/-}")
done
[[ ${#services[@]} -gt 0 ]] || die "no services/<name>/service.py under $ROOT"

mkdir -p "$OUT"
tmp="$(mktemp "$OUT/.kustomization.yaml.XXXXXX")"
{
  echo "# Written by scripts/set-registry.sh (DEVENV_REGISTRY=$REGISTRY, tag $TAG); re-run it rather than edit."
  echo "# \`git checkout k8s/overlays/prod/registry\` brings back the placeholder that stops the render."
  echo "apiVersion: kustomize.config.k8s.io/v1alpha1"
  echo "kind: Component"
  echo "images:"
  for service in "${services[@]}"; do
    printf '  - name: devenv/%s\n    newName: %s/devenv/%s\n    newTag: "%s"\n' "$service" "$REGISTRY" "$service" "$TAG"
  done
  printf '  - name: redis\n    newName: %s/redis\n' "$REGISTRY"  # keeps the base's pinned tag
} >"$tmp"
mv -f "$tmp" "$OUT/kustomization.yaml"
echo "set-registry.sh: prod images from $REGISTRY/devenv/<service>:$TAG (${#services[@]} services) in $OUT" >&2
