#!/usr/bin/env bash
# Run the official MCP conformance suite (@modelcontextprotocol/conformance)
# server scenarios against a running MCP Streamable HTTP endpoint.
#
#   usage: scripts/conformance.sh URL [scenario ...] [suite option ...]
#   e.g.   scripts/conformance.sh http://127.0.0.1:8101/mcp --requirements 2026-07-28
#          scripts/conformance.sh http://127.0.0.1:8101/mcp tools-list caching --spec-version 2026-07-28
#
# Words before the first argument that starts with "-" are scenario names, each run on
# its own; everything from that argument on goes to `conformance server` unchanged
# (--requirements, --spec-version, --expected-failures, ...; see its --help, printed by
# `scripts/conformance.sh --suite-help`). With options but no scenario the suite runs
# once with those options. With neither it runs the default scenarios below.
#
# The suite needs Node >= 22 but machines here ship Node 20 and only package
# registries are reachable, so we install Node 22 from the npm package `node`
# (a prebuilt binary shipped inside the registry) next to the suite, in a
# git-ignored cache. Versions are pinned by scripts/conformance/package-lock.json
# (conformance 0.2.0-alpha.12, node 22.23.3, and the TS MCP SDK whose client the
# suite uses). Re-runs skip the install unless that lockfile changed.
# Per-scenario checks.json files land in $CONFORMANCE_RESULTS (default $CACHE/results/),
# one results/server-<scenario>-<time>/ folder per scenario run.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
pins=$root/scripts/conformance
cache=${CONFORMANCE_CACHE:-$root/.cache/conformance}
node=$cache/node_modules/node/bin/node
cli=$cache/node_modules/@modelcontextprotocol/conformance/dist/index.js

install() {
  mkdir -p "$cache"
  echo '*' > "$cache/.gitignore"   # the cache ignores itself
  cp "$pins/package.json" "$pins/package-lock.json" "$cache/"
  # node@22's preinstall fetches the matching node-<os>-<arch> package from npm.
  (cd "$cache" && npm ci --no-audit --no-fund --loglevel=error >&2)
}
ensure_installed() {
  if ! { cmp -s "$pins/package-lock.json" "$cache/package-lock.json" \
         && [[ -f $cli ]] && "$node" --version >/dev/null 2>&1; }; then
    echo "Installing conformance suite into $cache ..." >&2
    install
  fi
}

if [[ ${1:-} == --suite-help ]]; then
  ensure_installed
  exec "$node" "$cli" server --help
fi
if [[ $# -lt 1 || $1 == -h || $1 == --help || $1 == -* ]]; then
  echo "usage: $0 URL [scenario ...] [suite option ...]   (suite options: $0 --suite-help)" >&2
  exit 2
fi
url=$1; shift
scenarios=()
while [[ $# -gt 0 && $1 != -* ]]; do scenarios+=("$1"); shift; done
options=("$@")
if [[ ${#scenarios[@]} -eq 0 && ${#options[@]} -eq 0 ]]; then
  scenarios=(server-initialize ping tools-list dns-rebinding-protection)
fi
ensure_installed

results=${CONFORMANCE_RESULTS:-$cache/results}
mkdir -p "$results"

if [[ ${#scenarios[@]} -eq 0 ]]; then
  # One run of the suite; it prints one line per scenario and the totals itself.
  rc=0
  log=$(mktemp)
  "$node" "$cli" server --url "$url" -o "$results" "${options[@]}" 2>&1 | tee "$log" || rc=$?
  ran=$(grep -cE '^[✓✗] [a-z0-9-]+: ' "$log" || true)
  ok=$(grep -cE '^✓ [a-z0-9-]+: ' "$log" || true)
  rm -f "$log"
  echo
  echo "=== conformance summary ($url ${options[*]}) ==="
  echo "scenarios: $ok of $ran passed (suite exit $rc)"
  exit "$rc"
fi

declare -a summary
failed=0
for s in "${scenarios[@]}"; do
  echo "=== $s ==="
  log=$(mktemp)
  rc=0
  "$node" "$cli" server --url "$url" --scenario "$s" -o "$results" "${options[@]}" 2>&1 | tee "$log" || rc=$?
  counts=$(grep -Eo 'Passed: [0-9]+/[0-9]+, [0-9]+ failed, [0-9]+ warnings' "$log" | tail -1 || true)
  rm -f "$log"
  if [[ $rc -eq 0 ]]; then
    summary+=("PASS  $s  ${counts:-}")
  else
    summary+=("FAIL  $s  ${counts:-(exit $rc)}")
    failed=$((failed + 1))
  fi
done

echo
echo "=== conformance summary ($url ${options[*]}) ==="
printf '%s\n' "${summary[@]}"
echo "$((${#scenarios[@]} - failed)) passed, $failed failed"
[[ $failed -eq 0 ]]
