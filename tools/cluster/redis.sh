# The 6-node Redis Cluster of tools/cluster/cluster.sh (sourced, not run): redis-server in
# cluster mode on 127.0.0.1:7101-7106 (bus ports 17101-17106), nothing on disk but nodes.conf
# (--save "" --appendonly no), each in $CLUSTER_DIR/redis-<port>; 3 masters with a replica each.

rcli() { # rcli PORT ARGS...
  local port=$1
  shift
  redis-cli -h 127.0.0.1 -p "$port" --no-auth-warning "$@"
}

redis_pid() { pid_of "$(redis_dir "$1")/redis.pid" "127.0.0.1:$1"; }
redis_answers() { [[ $(rcli "$1" ping 2>/dev/null) == PONG ]]; }
redis_info_field() { rcli "$1" cluster info 2>/dev/null | tr -d '\r' | sed -n "s/^$2://p"; }
redis_state_ok() { [[ $(redis_info_field "$1" cluster_state) == ok ]]; }

redis_start() {
  local port=$1 dir
  dir=$(redis_dir "$port")
  if redis_pid "$port" >/dev/null; then
    log "redis-$port is running already"
    return 0
  fi
  command -v redis-server >/dev/null 2>&1 || die "redis-server not found"
  if port_in_use "$port"; then die "port $port is taken by a process that is not redis-$port"; fi
  mkdir -p "$dir"
  log "starting redis-$port"
  # The service turns expiry notifications on itself; set here too for redis-cli users.
  (cd "$dir" && close_inherited_fds && redis-server --port "$port" --bind 127.0.0.1 --protected-mode yes \
    --cluster-enabled yes --cluster-config-file nodes.conf \
    --cluster-node-timeout "$REDIS_NODE_TIMEOUT_MS" --dir "$dir" \
    --save '' --appendonly no --notify-keyspace-events Ex \
    --daemonize yes --pidfile "$dir/redis.pid" --logfile "$dir/redis.log") ||
    die "redis-$port did not start (log: $dir/redis.log)"
}

redis_wait() {
  local port=$1
  wait_for "redis-$port answering PING" "$REDIS_TIMEOUT" redis_answers "$port"
}

# Creates the cluster from six empty nodes, or completes one that lost a node or some slots.
redis_form_cluster() {
  local p nodes=() assigned=0 seed='' fresh=()
  for p in "${REDIS_PORTS[@]}"; do
    nodes+=("127.0.0.1:$p")
    local a
    a=$(redis_info_field "$p" cluster_slots_assigned)
    if ((a > assigned)); then assigned=$a && seed=$p; fi
    if [[ $(redis_info_field "$p" cluster_known_nodes) == 1 ]] && ((a == 0)); then fresh+=("$p"); fi
  done
  if ((assigned == 0)); then
    log "creating the Redis Cluster: ${nodes[*]} (3 masters, 1 replica each)"
    redis-cli --cluster create "${nodes[@]}" --cluster-replicas 1 --cluster-yes >"$CLUSTER_DIR/redis-create.log" 2>&1 ||
      { tail -n 20 "$CLUSTER_DIR/redis-create.log" >&2; die "redis-cli --cluster create failed"; }
    return 0
  fi
  for p in "${fresh[@]}"; do
    log "redis-$p lost its cluster state: adding it back as a replica"
    redis-cli --cluster add-node "127.0.0.1:$p" "127.0.0.1:$seed" --cluster-slave >>"$CLUSTER_DIR/redis-create.log" 2>&1 ||
      die "redis-cli --cluster add-node 127.0.0.1:$p failed"
  done
  if ((assigned < 16384)); then
    log "only $assigned of 16384 slots assigned: redis-cli --cluster fix"
    redis-cli --cluster fix "127.0.0.1:$seed" --cluster-yes >>"$CLUSTER_DIR/redis-create.log" 2>&1 ||
      die "redis-cli --cluster fix failed"
  fi
  if ((${#fresh[@]} == 0 && assigned == 16384)); then log "the Redis Cluster exists already"; fi
}

redis_all_ok() {
  local p
  for p in "${REDIS_PORTS[@]}"; do
    redis_pid "$p" >/dev/null || continue # a killed node is not waited for
    redis_state_ok "$p" || return 1
    [[ $(redis_info_field "$p" cluster_known_nodes) == "${#REDIS_PORTS[@]}" ]] || return 1
  done
}

redis_wait_cluster() {
  wait_for "cluster_state:ok on every running Redis node" "$REDIS_TIMEOUT" redis_all_ok
  log "Redis Cluster ok: $(redis_roles)"
}

redis_roles() { # e.g. "7101=master 7102=master 7103=down 7104=replica ..."
  local out=() p
  while read -r _ addr flags master _; do
    p=${addr%%@*}
    p=${p##*:}
    if [[ $flags == *fail* && $flags != *'fail?'* ]] || [[ $flags == *noaddr* ]]; then
      out+=("$p=down")
    elif [[ $flags == *master* ]]; then
      out+=("$p=master")
    else
      out+=("$p=replica")
    fi
  done < <(redis_any_nodes)
  printf '%s\n' "${out[@]}" | sort | tr '\n' ' '
}

redis_any_nodes() { # `cluster nodes` from the first node that answers
  local p
  for p in "${REDIS_PORTS[@]}"; do
    if redis_answers "$p"; then rcli "$p" cluster nodes | tr -d '\r' && return 0; fi
  done
}

redis_stop() {
  local port=$1 pid
  if pid=$(redis_pid "$port"); then
    log "stopping redis-$port (pid $pid)"
    stop_pid "$pid" 20
  fi
}

redis_kill() {
  local port=$1 pid
  pid=$(redis_pid "$port") || die "redis-$port is not running"
  kill -KILL "$pid"
  log "redis-$port (pid $pid) killed with SIGKILL"
}
