# Shared settings and helpers of tools/cluster/cluster.sh (sourced, not run).
# Everything lives under CLUSTER_DIR, on ports of its own: the machine's default Redis (6379),
# RabbitMQ (5672, node rabbit@…) and their data are never touched.

CLUSTER_DIR=${SEAT_SAGA_CLUSTER_DIR:-/tmp/seat-saga-cluster}
RABBIT_TIMEOUT=${SEAT_SAGA_CLUSTER_RABBIT_TIMEOUT:-120}   # seconds for a rabbit node to boot/join
REDIS_TIMEOUT=${SEAT_SAGA_CLUSTER_REDIS_TIMEOUT:-60}      # seconds for redis nodes / cluster_state:ok
REDIS_NODE_TIMEOUT_MS=${SEAT_SAGA_CLUSTER_NODE_TIMEOUT_MS:-5000}  # cluster-node-timeout (failover)

RABBIT_IDS=(1 2 3)
REDIS_PORTS=(7101 7102 7103 7104 7105 7106)
rabbit_amqp_port() { echo $((5700 + $1)); }    # 5701-5703
rabbit_mgmt_port() { echo $((15700 + $1)); }   # 15701-15703
rabbit_dist_port() { echo $((25700 + $1)); }   # 25701-25703 (the default node uses 25672)

# Short host name for the Erlang node names; nodes need it to resolve (it does on Debian, through
# /etc/hosts). Where it does not, localhost does.
RABBIT_HOST=$(hostname -s 2>/dev/null || echo localhost)
if ! getent hosts "$RABBIT_HOST" >/dev/null 2>&1; then RABBIT_HOST=localhost; fi
rabbit_node() { echo "seatsaga-r$1@$RABBIT_HOST"; }
rabbit_dir() { echo "$CLUSTER_DIR/rabbit-$1"; }
redis_dir() { echo "$CLUSTER_DIR/redis-$1"; }

log() { printf '[cluster %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() {
  printf '[cluster %s] ERROR: %s\n' "$(date +%H:%M:%S)" "$*" >&2
  exit 1
}

# wait_for DESCRIPTION TIMEOUT_S COMMAND...: runs COMMAND every 0.5 s until it succeeds.
wait_for() {
  local what=$1 timeout=$2
  shift 2
  local deadline=$((SECONDS + timeout))
  until "$@" >/dev/null 2>&1; do
    if ((SECONDS >= deadline)); then die "$what: not within ${timeout}s"; fi
    sleep 0.5
  done
}

# pid_of PIDFILE MARKER [cmdline|environ]: prints the pid recorded in PIDFILE when that process
# is alive and its command line (or environment) contains MARKER, so that a recycled pid of
# someone else's process is never signalled.
pid_of() {
  local pidfile=$1 marker=$2 where=${3:-cmdline} pid
  [[ -s $pidfile ]] || return 1
  pid=$(tr -dc '0-9' <"$pidfile")
  [[ -n $pid && -r /proc/$pid/$where ]] || return 1
  if [[ $where == environ ]]; then # one NAME=VALUE a line, matched whole
    tr '\0' '\n' <"/proc/$pid/environ" | grep -qxF -- "$marker" || return 1
  else
    tr '\0' ' ' <"/proc/$pid/cmdline" | grep -qF -- "$marker" || return 1
  fi
  echo "$pid"
}

# stop_pid PID TIMEOUT_S: SIGTERM, then SIGKILL if it has not exited in time.
stop_pid() {
  local pid=$1 timeout=$2
  kill -TERM "$pid" 2>/dev/null || return 0
  local deadline=$((SECONDS + timeout))
  while kill -0 "$pid" 2>/dev/null; do
    if ((SECONDS >= deadline)); then
      log "pid $pid ignored SIGTERM for ${timeout}s: SIGKILL"
      kill -KILL "$pid" 2>/dev/null || true
      sleep 0.5
      return 0
    fi
    sleep 0.2
  done
}

# In a subshell about to start a node: closes every inherited fd above 2, so that the node holds
# nothing of whoever ran this script. flock(1) hands its lock to the command it runs: a node
# started under `flock some.lock npm run cluster:up` would otherwise hold that lock for its life.
close_inherited_fds() {
  local fd
  for fd in /proc/"$BASHPID"/fd/*; do
    fd=${fd##*/}
    if ((fd > 2)); then eval "exec $fd>&-" 2>/dev/null || true; fi
  done
}

port_in_use() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

print_node_names() {
  local names=() i p
  for i in "${RABBIT_IDS[@]}"; do names+=("rabbit-$i"); done
  for p in "${REDIS_PORTS[@]}"; do names+=("redis-$p"); done
  echo "${names[*]}"
}

# The assignments a client needs (cluster.sh up prints them last; cluster.sh env prints them alone).
print_env() {
  local redis=() amqp=() nodes=() i p
  for p in "${REDIS_PORTS[@]}"; do redis+=("127.0.0.1:$p"); done
  for i in "${RABBIT_IDS[@]}"; do
    amqp+=("amqp://guest:guest@127.0.0.1:$(rabbit_amqp_port "$i")")
    nodes+=("$(rabbit_node "$i")")
  done
  local IFS=,
  echo "REDIS_CLUSTER_NODES=${redis[*]}"
  echo "AMQP_URL=${amqp[*]}"
  echo "QUEUE_TYPE=quorum"
  echo "RABBITMQ_NODES=${nodes[*]}"
}
