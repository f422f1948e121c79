#!/usr/bin/env bash
# Turn a git-ignored .env into the Kubernetes objects the manifests reference but never contain:
#
#   <out>/secret.yaml     Secret    devenv-secrets  keys that look secret (TOKEN, SECRET, PASSWORD,
#                                                   API_KEY, CREDENTIAL, AUTH ...) and URLs with a password
#   <out>/configmap.yaml  ConfigMap devenv-env      every other setting
#
# made with `kubectl create ... --dry-run=client -o yaml` (no cluster needed), into a directory
# git ignores (default k8s/generated/; the script refuses one git would commit). Apply them
# before the overlay: `kubectl apply -f k8s/generated/`.
#
#   scripts/setup-from-env.sh [--env-file FILE] [--out DIR] [--namespace NS] [--stdout]
#
#   --env-file  the .env to read (default: .env at the repository root; $ENV_FILE)
#   --out       where to write (default: k8s/generated at the repository root; $OUT_DIR)
#   --namespace namespace of the objects (default: devenv; $DEVENV_NAMESPACE)
#   --stdout    print both objects to stdout instead of writing them (for Tilt's k8s_yaml(local(...)))
#
# .env format, as python-dotenv reads it: KEY=VALUE lines, optional `export `, # comments,
# 'single' (literal) or "double" quotes (\" \\ \n escapes); no multi-line values and no ${VAR}
# expansion. Empty values are left out, so they never override the manifests' defaults.
# Keys that only make sense on this machine (K8S_MODE, REDIS_URL, VAULT_ROOT, DEVENV_URL_* ...,
# see LOCAL_ONLY below) are never copied: in the cluster the manifests set them.
#
# REDIS_PASSWORD is required by the Redis StatefulSet and goes into redis://:PASSWORD@... URLs,
# so it must be URL-safe (letters, digits, - . _ ~). When .env has none, one is generated once
# and kept in <out>/redis-password (git-ignored like the rest), so re-running does not change it.
set -euo pipefail
umask 077

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
ENV_FILE="${ENV_FILE:-$ROOT/.env}"
OUT_DIR="${OUT_DIR:-$ROOT/k8s/generated}"
NAMESPACE="${DEVENV_NAMESPACE:-devenv}"
TO_STDOUT=false
SECRET_NAME=devenv-secrets
CONFIGMAP_NAME=devenv-env

LOCAL_ONLY=(  # and every DEVENV_URL_<NAME>
  K8S_MODE REDIS_URL VAULT_ROOT UNSORTED_ROOT JD_STRUCTURE_PATH
  DEVENV_URL_TEMPLATE DEVENV_SERVICES DEVENV_SERVICES_PACKAGE DEVENV_ENV_FILE
  DEVENV_TARGET DEVENV_STATE_DIR DEVENV_PROJECT_DIR DEVENV_BASE_IMAGE DEVENV_REDIS_IMAGE
  DEVENV_KIND_CLUSTER DEVENV_REGISTRY DEVENV_OVERLAY DEVENV_IMAGE_TAG DEVENV_KUBE_CONTEXT
  DEVENV_NAMESPACE DEVENV_ROLLOUT_TIMEOUT
  DEVENV_AUTH_TOKEN_FILE DEVENV_SECRETS_DIR DEVENV_ALLOWED_HOSTS DEVENV_BIND_HOST  # local paths; Host names that would reject Service names
)
SECRET_KEY_RE='TOKEN|SECRET|PASSWORD|PASSWD|API_?KEY|PRIVATE_?KEY|CREDENTIAL|AUTH'  # as devenv/config.py
URL_WITH_PASSWORD_RE='^[A-Za-z][A-Za-z0-9+.-]*://[^:/@[:space:]]*:[^@/[:space:]]+@'

die() { echo "setup-from-env.sh: error: $*" >&2; exit 1; }
note() { echo "setup-from-env.sh: $*" >&2; }

while [[ $# -gt 0 ]]; do
  case "$1" in
    --env-file) ENV_FILE="${2:?--env-file needs a path}"; shift 2 ;;
    --env-file=*) ENV_FILE="${1#*=}"; shift ;;
    --out) OUT_DIR="${2:?--out needs a directory}"; shift 2 ;;
    --out=*) OUT_DIR="${1#*=}"; shift ;;
    --namespace) NAMESPACE="${2:?--namespace needs a name}"; shift 2 ;;
    --namespace=*) NAMESPACE="${1#*=}"; shift ;;
    --stdout) TO_STDOUT=true; shift ;;
    -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) die "unknown argument: $1 (see --help)" ;;
  esac
done

command -v kubectl >/dev/null || die "kubectl not found on PATH (needed for kubectl create --dry-run=client)"

# -- the output directory: never a symlink, never somewhere git would commit -----------------

[[ -L "$OUT_DIR" ]] && die "$OUT_DIR is a symlink; refusing to write secrets through it"
[[ -e "$OUT_DIR" && ! -d "$OUT_DIR" ]] && die "$OUT_DIR exists and is not a directory"

ensure_ignored() {  # $1: a path that will hold secrets
  local probe="$1" dir
  dir="$(dirname "$probe")"
  while [[ ! -d "$dir" ]]; do dir="$(dirname "$dir")"; done
  git -C "$dir" rev-parse --is-inside-work-tree >/dev/null 2>&1 || return 0  # not in a repository
  if ! git -C "$dir" check-ignore -q "$(cd "$dir" && pwd)/${probe#"$dir"/}" 2>/dev/null; then
    die "$probe would not be ignored by git; refusing to write secrets there (add its folder to .gitignore, or use --out)"
  fi
}

for name in secret.yaml configmap.yaml redis-password; do ensure_ignored "$OUT_DIR/$name"; done
mkdir -p "$OUT_DIR"

# -- read .env -------------------------------------------------------------------------------

unescape_double() {  # the escapes python-dotenv honours in "double quoted" values
  local in="$1" out="" ch
  while [[ -n "$in" ]]; do
    ch="${in:0:1}"
    if [[ "$ch" == "\\" && ${#in} -ge 2 ]]; then
      case "${in:1:1}" in
        n) out+=$'\n' ;;
        t) out+=$'\t' ;;
        \"|\\|\') out+="${in:1:1}" ;;
        *) out+="$ch${in:1:1}" ;;
      esac
      in="${in:2}"
    else
      out+="$ch"
      in="${in:1}"
    fi
  done
  printf '%s' "$out"
}

WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT
mkdir "$WORK/env" "$WORK/secret" "$WORK/config"
# One file per key under $WORK/env: a later line overwrites an earlier one (as python-dotenv),
# any value survives unchanged, and no secret ever appears on a command line.
if [[ -f "$ENV_FILE" ]]; then
  lineno=0
  while IFS= read -r line || [[ -n "$line" ]]; do
    lineno=$((lineno + 1))
    line="${line%$'\r'}"
    [[ "$line" =~ ^[[:space:]]*(#|$) ]] && continue
    if [[ ! "$line" =~ ^[[:space:]]*(export[[:space:]]+)?([A-Za-z_][A-Za-z0-9_]*)[[:space:]]*=[[:space:]]*(.*)$ ]]; then
      note "warning: $ENV_FILE:$lineno is not KEY=VALUE; skipped"
      continue
    fi
    key="${BASH_REMATCH[2]}"
    raw="${BASH_REMATCH[3]}"
    if [[ "$raw" =~ ^\"(.*)\"[[:space:]]*(#.*)?$ ]]; then
      value="$(unescape_double "${BASH_REMATCH[1]}")"
    elif [[ "$raw" =~ ^\'(.*)\'[[:space:]]*(#.*)?$ ]]; then
      value="${BASH_REMATCH[1]}"
    elif [[ "$raw" =~ ^[\"\'] ]]; then
      die "$ENV_FILE:$lineno: $key: unterminated quote (multi-line values are not supported)"
    else
      value="${raw%%[[:space:]]#*}"                  # an unquoted value ends at " #"
      value="${value%"${value##*[![:space:]]}"}"     # trailing blanks
    fi
    printf '%s' "$value" >"$WORK/env/$key"
  done <"$ENV_FILE"
else
  note "no $ENV_FILE; using defaults (copy .env.example to .env to set anything)"
fi

# -- generated secrets: REDIS_PASSWORD, DEVENV_STATE_SECRET ----------------------------------------
# Unset in .env: made once and kept in k8s/generated/, so a re-run (and every replica) gets the same.

generate_unless_set() {  # $1: the key, $2: the file it is kept in, $3: random bytes
  local key="$1" kept="$OUT_DIR/$2"
  [[ -s "$WORK/env/$key" ]] && return 0
  [[ -L "$kept" ]] && die "$kept is a symlink; refusing to read or write it"
  if [[ -s "$kept" ]]; then
    tr -d '\n' <"$kept" >"$WORK/env/$key"
  else
    head -c "$3" /dev/urandom | od -An -tx1 | tr -d ' \n' >"$WORK/env/$key"
    tmp="$(mktemp "$OUT_DIR/.$2.XXXXXX")"
    cat "$WORK/env/$key" >"$tmp"
    mv -f "$tmp" "$kept"
    note "no $key in $ENV_FILE: generated one, kept in $kept"
  fi
}
generate_unless_set REDIS_PASSWORD redis-password 24
generate_unless_set DEVENV_STATE_SECRET state-secret 32   # seals MCP requestState; shared by all replicas
[[ "$(<"$WORK/env/REDIS_PASSWORD")" =~ ^[A-Za-z0-9._~-]+$ ]] ||
  die "REDIS_PASSWORD may only contain letters, digits and - . _ ~ (it goes into a redis:// URL)"

# -- split into Secret and ConfigMap ---------------------------------------------------------

secret_keys="" config_keys="" skipped=""
shopt -s nocasematch
for path in "$WORK"/env/*; do
  key="${path##*/}"
  value="$(<"$path")"
  if [[ " ${LOCAL_ONLY[*]} " == *" $key "* || "$key" == DEVENV_URL_* ]]; then
    skipped+=" $key"
  elif [[ -z "$value" ]]; then
    continue
  elif [[ "$key" =~ $SECRET_KEY_RE || "$value" =~ $URL_WITH_PASSWORD_RE ]]; then
    mv "$path" "$WORK/secret/$key"
    secret_keys+=" $key"
  else
    mv "$path" "$WORK/config/$key"
    config_keys+=" $key"
  fi
done
shopt -u nocasematch

render() {  # $1: secret|configmap
  local labels=(app.kubernetes.io/part-of=devenv app.kubernetes.io/managed-by=setup-from-env)
  if [[ "$1" == secret ]]; then
    kubectl create secret generic "$SECRET_NAME" --namespace "$NAMESPACE" \
      --from-file="$WORK/secret" --dry-run=client -o yaml
  else
    kubectl create configmap "$CONFIGMAP_NAME" --namespace "$NAMESPACE" \
      --from-file="$WORK/config" --dry-run=client -o yaml
  fi | kubectl label --local -f - "${labels[@]}" --dry-run=client -o yaml
}

render secret >"$WORK/secret.yaml"
render configmap >"$WORK/configmap.yaml"
grep -q '^kind: Secret$' "$WORK/secret.yaml" || die "kubectl produced no Secret"
grep -q '^kind: ConfigMap$' "$WORK/configmap.yaml" || die "kubectl produced no ConfigMap"

if $TO_STDOUT; then
  cat "$WORK/secret.yaml"
  echo ---
  cat "$WORK/configmap.yaml"
else
  for name in secret.yaml configmap.yaml; do
    dest="$OUT_DIR/$name"
    if [[ -L "$dest" ]]; then rm -f "$dest"; fi       # replace a symlink, never write through it
    [[ -d "$dest" ]] && die "$dest is a directory"
    if [[ -f "$dest" ]] && cmp -s "$WORK/$name" "$dest"; then continue; fi  # unchanged: leave the mtime
    tmp="$(mktemp "$OUT_DIR/.$name.XXXXXX")"
    cat "$WORK/$name" >"$tmp"
    mv -f "$tmp" "$dest"
  done
  config_keys="${config_keys# }"
  note "wrote $OUT_DIR/secret.yaml (${secret_keys# }) and $OUT_DIR/configmap.yaml (${config_keys:-no keys})"
fi
[[ -z "$skipped" ]] || note "left out (the manifests set these in the cluster):$skipped"
