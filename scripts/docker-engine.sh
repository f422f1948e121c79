#!/usr/bin/env bash
# Start (or stop) a Docker engine on a machine without an init system, as CI and these sandboxes are:
#
#   scripts/docker-engine.sh start   dockerd in the background, until `docker info` answers
#   scripts/docker-engine.sh stop    stop the dockerd this script started (and only that one)
#
# `start` does nothing if an engine already answers. Otherwise it tries dockerd as Debian
# configures it, then with fewer host requirements, keeping the first that answers:
#   1. defaults (overlay2, iptables NAT)
#   2. --iptables=false --ip6tables=false     (no netfilter in the kernel or no permission:
#                                             published ports still work through docker-proxy)
#   3. the same with --storage-driver=vfs     (no overlayfs: slower builds, same results)
# Needs root and dockerd (Debian: apt-get install docker.io). The log is in $DOCKERD_LOG.
set -euo pipefail

PIDFILE=${DEVENV_DOCKERD_PIDFILE:-/run/devenv-dockerd.pid}
DOCKERD_LOG=${DOCKERD_LOG:-/var/log/devenv-dockerd.log}
WAIT=${DOCKERD_WAIT:-60}

say() { echo "docker-engine: $*" >&2; }
answers() { timeout 10 docker info >/dev/null 2>&1; }

ours_running() {
  [[ -f $PIDFILE ]] && kill -0 "$(cat "$PIDFILE")" 2>/dev/null \
    && grep -qa dockerd "/proc/$(cat "$PIDFILE")/cmdline" 2>/dev/null
}

stop() {
  if ! ours_running; then
    rm -f "$PIDFILE"
    return 0
  fi
  local pid
  pid=$(cat "$PIDFILE")
  say "stopping dockerd (pid $pid)"
  kill "$pid"
  for _ in $(seq 1 $((WAIT * 10))); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  if kill -0 "$pid" 2>/dev/null; then
    say "dockerd (pid $pid) did not stop in ${WAIT}s; killing it"
    kill -9 "$pid" 2>/dev/null || true
  fi
  rm -f "$PIDFILE"
}

try_start() {
  say "starting dockerd $*"
  mkdir -p "$(dirname "$DOCKERD_LOG")" "$(dirname "$PIDFILE")"
  echo "=== dockerd $* ($(date -u +%FT%TZ))" >>"$DOCKERD_LOG"
  # dockerd writes the pidfile itself (it refuses to start over a live one), so `stop` finds it.
  dockerd --pidfile "$PIDFILE" "$@" >>"$DOCKERD_LOG" 2>&1 </dev/null &
  local pid=$!
  for _ in $(seq 1 $((WAIT * 5))); do
    if answers; then
      say "dockerd is up (pid $pid, $(docker info --format '{{.Driver}}' 2>/dev/null) storage)"
      return 0
    fi
    if ! kill -0 "$pid" 2>/dev/null; then
      say "dockerd $* exited; last lines of $DOCKERD_LOG:"
      tail -n 15 "$DOCKERD_LOG" >&2
      return 1
    fi
    sleep 0.2
  done
  say "dockerd $* did not answer within ${WAIT}s; last lines of $DOCKERD_LOG:"
  tail -n 15 "$DOCKERD_LOG" >&2
  kill "$pid" 2>/dev/null || true
  for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  kill -9 "$pid" 2>/dev/null || true
  return 1
}

start() {
  if answers; then
    say "a Docker engine already answers; nothing to start"
    return 0
  fi
  if [[ $(id -u) != 0 ]]; then
    say "no Docker engine answers, and starting dockerd needs root"
    return 1
  fi
  if ! command -v dockerd >/dev/null; then
    say "dockerd not found (Debian: apt-get install docker.io)"
    return 1
  fi
  if ours_running; then
    stop  # started by an earlier run but not answering: start afresh
  fi
  try_start && return 0
  try_start --iptables=false --ip6tables=false && return 0
  try_start --iptables=false --ip6tables=false --storage-driver=vfs && return 0
  say "could not start dockerd in any configuration; see $DOCKERD_LOG"
  return 1
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  *) echo "usage: $0 start|stop" >&2; exit 2 ;;
esac
