#!/usr/bin/env bash
# A 3-node RabbitMQ cluster and a 6-node Redis Cluster on this machine, without Docker, for
# seat-saga's cluster tests and failover drills. See tools/cluster/README.md.
#
#   cluster.sh up            start whatever is not running, join/create the clusters, print the env
#   cluster.sh down          stop every node it started and remove the data dir
#   cluster.sh kill NODE     SIGKILL one node (a crash): rabbit-1..3, redis-7101..7106
#   cluster.sh start NODE    restart it and wait until it is back in its cluster
#   cluster.sh status        what runs, redis roles, rabbit cluster_status
#   cluster.sh env           the client settings alone (REDIS_CLUSTER_NODES=…, AMQP_URL=…, …)
#
# Progress goes to stderr; `up` and `env` print the settings on stdout, so
#   set -a; eval "$(npm run --silent cluster:up)"; set +a
# exports them into the current shell.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=lib.sh
. "$HERE/lib.sh"
# shellcheck source=rabbit.sh
. "$HERE/rabbit.sh"
# shellcheck source=redis.sh
. "$HERE/redis.sh"

MARKER=.seat-saga-cluster # in CLUSTER_DIR: `down` removes only a directory that has it

now_ms() { date +%s%3N; }

lock() { # one cluster.sh at a time (the lock file lives beside the data dir, not in it)
  exec 9>"${CLUSTER_DIR%/}.lock"
  flock -w 600 9 || die "another cluster.sh holds ${CLUSTER_DIR%/}.lock"
}

prepare_dir() {
  if [[ -d $CLUSTER_DIR && ! -e $CLUSTER_DIR/$MARKER && -n $(ls -A "$CLUSTER_DIR") ]]; then
    die "$CLUSTER_DIR exists and is not a seat-saga cluster dir: set SEAT_SAGA_CLUSTER_DIR"
  fi
  mkdir -p "$CLUSTER_DIR"
  chmod 755 "$CLUSTER_DIR"
  touch "$CLUSTER_DIR/$MARKER"
}

check_tools() {
  command -v redis-server >/dev/null 2>&1 || die "redis-server is not installed (apt-get install redis-server)"
  command -v redis-cli >/dev/null 2>&1 || die "redis-cli is not installed (apt-get install redis-tools)"
  [[ -n $RABBIT_BIN && -x $RABBIT_BIN/rabbitmq-server ]] ||
    die "rabbitmq-server is not installed (apt-get install rabbitmq-server)"
}

cmd_up() {
  local t0 i p
  t0=$(now_ms)
  check_tools
  prepare_dir
  # Redis nodes start in milliseconds, RabbitMQ nodes in seconds: start them all, then wait.
  for p in "${REDIS_PORTS[@]}"; do redis_start "$p"; done
  for i in "${RABBIT_IDS[@]}"; do rabbit_start "$i"; done
  for p in "${REDIS_PORTS[@]}"; do redis_wait "$p"; done
  redis_form_cluster
  redis_wait_cluster
  for i in "${RABBIT_IDS[@]}"; do rabbit_wait "$i"; done
  for i in "${RABBIT_IDS[@]:1}"; do rabbit_join "$i"; done
  for i in "${RABBIT_IDS[@]}"; do rabbit_wait_member "$i"; done
  log "cluster up in $((($(now_ms) - t0) / 1000)).$(printf '%03d' $((($(now_ms) - t0) % 1000)))s" \
    "(data: $CLUSTER_DIR; management UI http://127.0.0.1:$(rabbit_mgmt_port 1), guest/guest)"
  print_env >"$CLUSTER_DIR/env"
  echo "# nodes for cluster:kill / cluster:start: $(print_node_names)"
  print_env
}

cmd_down() {
  local i p pids=() pid
  # SIGTERM to all three rabbit nodes at once (each would wait for the others otherwise).
  for i in "${RABBIT_IDS[@]}"; do
    if pid=$(rabbit_pid "$i"); then
      log "stopping rabbit-$i (pid $pid)"
      kill -TERM "$pid" 2>/dev/null || true
      pids+=("$pid")
    fi
  done
  for pid in "${pids[@]}"; do stop_pid "$pid" 60; done
  for p in "${REDIS_PORTS[@]}"; do redis_stop "$p"; done
  if [[ -d $CLUSTER_DIR ]]; then
    if [[ -e $CLUSTER_DIR/$MARKER ]]; then
      rm -rf "$CLUSTER_DIR"
      log "removed $CLUSTER_DIR"
    else
      log "left $CLUSTER_DIR alone: it has no $MARKER"
    fi
  fi
  log "cluster down"
}

# parse_node NAME: sets KIND (rabbit|redis) and ID (1..3 or the port), or dies.
parse_node() {
  local name=${1:-}
  KIND=${name%%-*}
  ID=${name#*-}
  case $KIND in
    rabbit) [[ " ${RABBIT_IDS[*]} " == *" $ID "* ]] && return 0 ;;
    redis) [[ " ${REDIS_PORTS[*]} " == *" $ID "* ]] && return 0 ;;
  esac
  die "unknown node '${name}': one of $(print_node_names)"
}

cmd_kill() {
  parse_node "${1:-}"
  if [[ $KIND == rabbit ]]; then rabbit_kill "$ID"; else redis_kill "$ID"; fi
}

cmd_start() {
  local t0
  t0=$(now_ms)
  parse_node "${1:-}"
  [[ -e $CLUSTER_DIR/$MARKER ]] || die "no cluster in $CLUSTER_DIR: run cluster:up first"
  if [[ $KIND == rabbit ]]; then
    rabbit_start "$ID"
    rabbit_wait "$ID"
    rabbit_wait_member "$ID"
  else
    redis_start "$ID"
    redis_wait "$ID"
    redis_wait_cluster
  fi
  log "$1 back in $((($(now_ms) - t0) / 1000)).$(printf '%03d' $((($(now_ms) - t0) % 1000)))s"
}

cmd_status() {
  local i p
  for i in "${RABBIT_IDS[@]}"; do
    if rabbit_pid "$i" >/dev/null; then
      echo "rabbit-$i $(rabbit_node "$i") up (pid $(rabbit_pid "$i")), sees running: $(rabbit_running_nodes "$i" | tr '\n' ' ')"
    else
      echo "rabbit-$i $(rabbit_node "$i") down"
    fi
  done
  for p in "${REDIS_PORTS[@]}"; do
    if redis_pid "$p" >/dev/null; then
      echo "redis-$p up (pid $(redis_pid "$p")), cluster_state:$(redis_info_field "$p" cluster_state)"
    else
      echo "redis-$p down"
    fi
  done
  echo "redis roles: $(redis_roles)"
}

case ${1:-} in
  up) lock && cmd_up ;;
  down) lock && cmd_down ;;
  kill) cmd_kill "${2:-}" ;; # no lock: a drill kills a node while a test holds nothing
  start) lock && cmd_start "${2:-}" ;;
  status) cmd_status ;;
  env) print_env ;;
  *)
    echo "usage: $0 up|down|kill NODE|start NODE|status|env   (NODE: $(print_node_names))" >&2
    exit 2
    ;;
esac
