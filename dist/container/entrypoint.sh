#!/usr/bin/env bash
# ringkv's container entrypoint: runs ringkvd, makes the node part of a cluster (founds it,
# or joins one, or leaves that to an operator), and reports when the node is ready. The same
# script runs in the image, in compose and in Kubernetes; the test suite runs it outside a
# container (tests/entrypoint.rs). ringkvd itself reads its configuration from RINGKVD_*
# variables (ringkvd.example.toml); the script reads these:
#
#   RINGKVD_ADVERTISE, or else RINGKVD_LISTEN   this node's address as the cluster knows it
#   RINGKVD_ADMIN_LISTEN                        where /ready is asked (0.0.0.0 means loopback)
#   RINGKVD_CLUSTER_SECRET_FILE (or RINGKVD_SECURITY__CLUSTER_SECRET_FILE), and
#   RINGKVD_TLS_CA_FILE (with mutual TLS, the node's certificate and key) also given to the
#                                               CLI's membership commands
#   RINGKV_FOUNDERS   comma-separated addresses of the nodes that found the cluster together.
#                     The first of them runs `ringkv cluster init` once all of them run; the
#                     others wait. A node that already belongs to a cluster founds nothing,
#                     so a founder restarted after the cluster grew stays what it is.
#   RINGKV_JOIN       for a node that is not a founder: `manual` (default: it waits for an
#                     operator's `ringkv cluster join`, see docs/kubernetes.md) or `auto` (it
#                     runs `ringkv cluster join --commit` itself, with RINGKVD_SEEDS as seeds).
#   RINGKV_NODE_NAME  in Kubernetes, the name of the machine the pod runs on (the downward
#                     API's spec.nodeName): unless RINGKVD_ZONE is set, the node's zone is
#                     that machine's topology.kubernetes.io/zone label, read from the API
#                     server with the pod's service account (it needs `get` on nodes;
#                     RINGKV_KUBE_API and RINGKV_KUBE_SA override where the API and the
#                     account's token and CA are, for tests).
#   RINGKV_BOOTSTRAP_TIMEOUT   seconds a founder tries to found, counted from when its ringkvd
#                     answers (opening a large store may take long), before giving up
#                     (default 600): it then stops ringkvd and exits 1, so the orchestrator
#                     restarts it and shows it. A joining node never gives up: until it is a
#                     member it holds nothing, and a transfer under way may take hours.
#   RINGKVD_BIN, RINGKV_BIN    the binaries (default: ringkvd and ringkv on PATH).
#
# Arguments are passed to ringkvd. SIGTERM and SIGINT are passed to ringkvd (which drains,
# flushes and exits), and the script exits with ringkvd's status.
set -euo pipefail

ringkvd_bin="${RINGKVD_BIN:-ringkvd}"
ringkv_bin="${RINGKV_BIN:-ringkv}"
timeout="${RINGKV_BOOTSTRAP_TIMEOUT:-600}"
self="${RINGKVD_ADVERTISE:-${RINGKVD_LISTEN:-}}"
join="${RINGKV_JOIN:-manual}"

log() { printf 'entrypoint: %s\n' "$*" >&2; }

case "$join" in
  manual | auto) ;;
  *) log "RINGKV_JOIN is '$join': say manual or auto"; exit 2 ;;
esac
if [ -n "${RINGKV_FOUNDERS:-}" ] || [ "$join" = auto ]; then
  case "$self" in
    "" | 0.0.0.0:* | "[::]:"*)
      log "set RINGKVD_ADVERTISE to the address the others reach this node at (it is '$self')"
      exit 2 ;;
  esac
fi
# The CLI's membership commands need the cluster secret when the cluster has one.
secret="${RINGKVD_CLUSTER_SECRET_FILE:-${RINGKVD_SECURITY__CLUSTER_SECRET_FILE:-}}"
if [ -n "$secret" ] && [ -z "${RINGKV_CLUSTER_SECRET_FILE:-}" ]; then
  export RINGKV_CLUSTER_SECRET_FILE="$secret"
fi
# And TLS, when the nodes speak it: trust their CA, and (mutual TLS) show the node's own
# certificate, which the other nodes accept from a peer.
if [ -n "${RINGKVD_TLS_CA_FILE:-}" ] && [ -z "${RINGKV_TLS_CA_FILE:-}" ]; then
  export RINGKV_TLS_CA_FILE="$RINGKVD_TLS_CA_FILE"
  if [ -n "${RINGKVD_TLS_CLIENT_CA_FILE:-}" ] && [ -z "${RINGKV_TLS_CERT_FILE:-}" ]; then
    export RINGKV_TLS_CERT_FILE="${RINGKVD_TLS_CERT_FILE:-}" RINGKV_TLS_KEY_FILE="${RINGKVD_TLS_KEY_FILE:-}"
  fi
fi

# SIGTERM and SIGINT stop the node, from the first moment: as PID 1, a signal without a
# handler would be ignored. A stop also ends the founding or joining under way.
stopping=0
node=""
forward() {
  stopping=1
  [ -z "$node" ] || kill -TERM "$node" 2>/dev/null || true
}
trap forward TERM INT

# pause SECONDS: a sleep that a signal ends at once (a trap runs only between commands, and
# `wait` is one a signal interrupts).
pause() {
  sleep "$1" &
  local p=$!
  wait "$p" 2>/dev/null || true
  kill "$p" 2>/dev/null || true
}

# zone_of_machine NAME: the topology.kubernetes.io/zone label of Kubernetes node NAME, or
# nothing when it has none. Label values are letters, digits, '-', '_' and '.': no escaping.
zone_of_machine() {
  local sa="${RINGKV_KUBE_SA:-/var/run/secrets/kubernetes.io/serviceaccount}"
  local api="${RINGKV_KUBE_API:-https://${KUBERNETES_SERVICE_HOST:-kubernetes.default.svc}:${KUBERNETES_SERVICE_PORT:-443}}"
  local body
  body=$(curl -fsS --max-time 10 --cacert "$sa/ca.crt" \
    -H "Authorization: Bearer $(cat "$sa/token")" "$api/api/v1/nodes/$1") || return 1
  # No label is no match, not a failure (grep's status would be, under pipefail).
  printf '%s' "$body" | tr -d '\n' \
    | { grep -o '"topology\.kubernetes\.io/zone": *"[^"]*"' || true; } \
    | head -n 1 | sed 's/.*"\([^"]*\)"$/\1/'
}
if [ -n "${RINGKV_NODE_NAME:-}" ] && [ -z "${RINGKVD_ZONE:-}" ]; then
  if zone=$(zone_of_machine "$RINGKV_NODE_NAME"); then
    if [ -n "$zone" ]; then
      export RINGKVD_ZONE="$zone"
      log "zone $zone (the label of machine $RINGKV_NODE_NAME)"
    else
      log "machine $RINGKV_NODE_NAME has no topology.kubernetes.io/zone label: no zone"
    fi
  else
    # A node in the wrong zone would put two replicas of a key in one failure domain.
    log "could not read machine $RINGKV_NODE_NAME's zone from the API server; not starting"
    exit 1
  fi
fi

# The admin address to ask, from this machine: a wildcard listen address is reached on loopback.
admin=""
if [ -n "${RINGKVD_ADMIN_LISTEN:-}" ]; then
  admin="$RINGKVD_ADMIN_LISTEN"
  case "$admin" in
    0.0.0.0:*) admin="127.0.0.1:${admin#0.0.0.0:}" ;;
    "[::]:"*) admin="[::1]:${admin#\[::\]:}" ;;
  esac
fi

[ "$stopping" = 0 ] || exit 0
"$ringkvd_bin" "$@" &
node=$!
[ "$stopping" = 0 ] || forward

alive() { kill -0 "$node" 2>/dev/null; }
running() { [ "$stopping" = 0 ] && alive; }

# up: ringkvd answers (its admin port, else its data port).
up() {
  if [ -n "$admin" ]; then
    curl -fsS --max-time 2 "http://$admin/health" >/dev/null 2>&1
  else
    (exec 3<>"/dev/tcp/${self%:*}/${self##*:}") 2>/dev/null
  fi
}

# is_founder: this node's address is one of RINGKV_FOUNDERS.
is_founder() {
  local f
  IFS=, read -ra founders <<<"${RINGKV_FOUNDERS:-}"
  for f in "${founders[@]}"; do [ "$f" = "$self" ] && return 0; done
  return 1
}

# belongs: this node holds the layout of a founded cluster (it founded one, was told of one by
# gossip, or is a member). Decides that a founder has nothing left to found.
belongs() {
  "$ringkv_bin" --seeds "$self" --timeout 2 cluster layout >/dev/null 2>&1
}

# attempt: one try at making this node part of the cluster; succeeds once it is.
attempt() {
  if is_founder; then
    if belongs; then
      echo "this node holds a founded cluster's layout: it founds nothing"
      return 0
    fi
    IFS=, read -ra founders <<<"$RINGKV_FOUNDERS"
    # One founder founds (two founding at once could make two layouts); the others are told.
    if [ "${founders[0]}" != "$self" ]; then
      echo "waiting for ${founders[0]} to found the cluster"
      return 1
    fi
    "$ringkv_bin" --seeds "$RINGKV_FOUNDERS" cluster init
  elif [ "$join" = auto ]; then
    "$ringkv_bin" --seeds "${RINGKVD_SEEDS:-$self}" cluster join "$self" --commit
  else
    echo "not a founder and RINGKV_JOIN=manual: waiting for \`ringkv cluster join $self\`"
  fi
}

# try: `attempt` in the background, so that a stop is handled at once rather than after a
# membership command of tens of seconds; its output in $out.
out=""
try() {
  local file p rc
  file=$(mktemp)
  attempt >"$file" 2>&1 &
  p=$!
  while :; do
    wait "$p" && rc=0 || rc=$?
    if [ "$stopping" = 1 ]; then
      kill "$p" 2>/dev/null || true
      rc=1
      break
    fi
    kill -0 "$p" 2>/dev/null || break
  done
  out=$(cat "$file")
  rm -f "$file"
  return "$rc"
}

# bootstrap: found or join. 0: done; 1: a founder gave up; 2: stopped, or ringkvd is gone.
bootstrap() {
  local deadline said="" pace=1
  is_founder || pace=5
  while ! up; do
    running || return 2
    pause 1
  done
  deadline=$((SECONDS + timeout))
  while running; do
    if try; then
      [ -z "$out" ] || log "$out"
      return 0
    fi
    [ "$stopping" = 0 ] || return 2
    # Said once, not every second.
    [ "$out" = "$said" ] || log "${out:-no answer yet}"
    said="$out"
    if is_founder && [ "$SECONDS" -ge "$deadline" ]; then
      log "gave up after ${timeout}s: ${out:-no answer}"
      return 1
    fi
    pause "$pace"
  done
  return 2
}

wait_ready() {
  [ -n "$admin" ] || return 0
  while running; do
    if curl -fsS --max-time 2 "http://$admin/ready" >/dev/null 2>&1; then
      log "ready"
      return 0
    fi
    pause 1
  done
  return 1
}

if [ -n "${RINGKV_FOUNDERS:-}" ] || [ "$join" = auto ]; then
  bootstrap && done=0 || done=$?
  # A founder gave up while ringkvd runs: stop it and fail. (Otherwise ringkvd's status is
  # the answer, below.)
  if [ "$done" = 1 ] && running; then
    forward
    wait "$node" || true
    exit 1
  fi
elif [ -n "$self" ]; then
  log "not a founder and RINGKV_JOIN=manual: waiting for \`ringkv cluster join $self\`"
fi
wait_ready || true

# A trapped signal ends `wait` early: wait again while ringkvd drains, and exit with its status.
while :; do
  wait "$node" && status=0 || status=$?
  if ! alive; then
    if [ "$status" -gt 128 ]; then
      wait "$node" 2>/dev/null && status=0 || { s=$?; [ "$s" -eq 127 ] || status=$s; }
    fi
    break
  fi
done
exit "$status"
