#!/usr/bin/env bash
# Failover drill on the clusters of cluster.sh (run `cluster.sh up` first), with timings:
#   drill.sh redis [PORT]    SIGKILL a Redis master (default: the master 127.0.0.1:7101 or the
#                            first master), time until its replica is promoted and cluster_state
#                            is ok again, restart it, time until it is back (as a replica)
#   drill.sh rabbit [N]      SIGKILL rabbit-N (default 2), time until the others' cluster_status
#                            lists it as not running, restart it, time until it runs in the cluster
# Prints one line per measure: "drill redis-7101 promoted 7104 after 6.4s", …
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
. "$HERE/lib.sh"
. "$HERE/rabbit.sh"
. "$HERE/redis.sh"

now_ms() { date +%s%3N; }
since() { local ms=$(($(now_ms) - $1)); printf '%d.%01ds' $((ms / 1000)) $((ms % 1000 / 100)); }

node_id_of() { redis_any_nodes | awk -v a="127.0.0.1:$1@" 'index($2, a) == 1 { print $1 }'; }
masters() { redis_any_nodes | awk '$3 ~ /master/ && $3 !~ /fail/ { split($2, a, "@"); print a[1] }'; }
is_master() { masters | grep -qxF "127.0.0.1:$1"; }

drill_redis() {
  local port=${1:-} id replica t0 p
  if [[ -z $port ]]; then port=$(masters | head -n 1) && port=${port##*:}; fi
  masters | grep -qxF "127.0.0.1:$port" || die "redis-$port is not a running master"
  id=$(node_id_of "$port")
  replica=$(redis_any_nodes | awk -v id="$id" '$4 == id && $3 !~ /fail/ { split($2, a, "@"); print a[1]; exit }')
  replica=${replica##*:}
  [[ -n $replica ]] || die "redis-$port has no replica"
  log "drill: redis-$port is a master, its replica is redis-$replica"
  t0=$(now_ms)
  redis_kill "$port"
  wait_for "redis-$replica promoted" "$REDIS_TIMEOUT" is_master "$replica"
  echo "drill redis-$port killed: redis-$replica promoted after $(since "$t0")"
  for p in "${REDIS_PORTS[@]}"; do
    [[ $p == "$port" ]] && continue
    wait_for "cluster_state:ok on redis-$p" "$REDIS_TIMEOUT" redis_state_ok "$p"
  done
  echo "drill redis-$port killed: cluster_state ok on all the others after $(since "$t0")"
  t0=$(now_ms)
  redis_start "$port"
  redis_wait "$port"
  redis_wait_cluster
  echo "drill redis-$port restarted: back in the cluster after $(since "$t0") ($(redis_roles))"
}

rabbit_not_running_in() { ! rabbit_is_running_in "$1" "$2"; }

drill_rabbit() {
  local n=${1:-2} other t0
  other=$((n % ${#RABBIT_IDS[@]} + 1))
  rabbit_is_running_in "$n" "$other" || die "rabbit-$n is not running in the cluster"
  t0=$(now_ms)
  rabbit_kill "$n"
  wait_for "rabbit-$n not running in rabbit-$other's cluster_status" "$RABBIT_TIMEOUT" \
    rabbit_not_running_in "$n" "$other"
  echo "drill rabbit-$n killed: not running in rabbit-$other's cluster_status after $(since "$t0")"
  t0=$(now_ms)
  rabbit_start "$n"
  rabbit_wait "$n"
  rabbit_wait_member "$n"
  echo "drill rabbit-$n restarted: running in the cluster after $(since "$t0")"
}

case ${1:-} in
  redis) drill_redis "${2:-}" ;;
  rabbit) drill_rabbit "${2:-}" ;;
  *) echo "usage: $0 redis [PORT] | rabbit [N]" >&2 && exit 2 ;;
esac
