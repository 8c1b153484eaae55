# The 3-node RabbitMQ cluster of tools/cluster/cluster.sh (sourced, not run).
#
# Each node is a plain rabbitmq-server with its own node name (seatsaga-rN@<host>), ports, config,
# enabled-plugins file, mnesia/log dirs and pid file under $CLUSTER_DIR/rabbit-N. The node runs
# with the Erlang cookie of the machine's default RabbitMQ: as root it runs as the rabbitmq user
# (HOME = that user's home, where the cookie is), so `rabbitmqctl -n seatsaga-r1@<host> …` works
# as it does for the default node. The script never reads the cookie itself.

RABBIT_BIN=${RABBITMQ_SCRIPTS_DIR:-}
if [[ -z $RABBIT_BIN ]]; then
  if [[ -x /usr/lib/rabbitmq/bin/rabbitmq-server ]]; then
    RABBIT_BIN=/usr/lib/rabbitmq/bin # Debian: /usr/sbin/* are wrappers that log to /var/log
  elif command -v rabbitmq-server >/dev/null 2>&1; then
    RABBIT_BIN=$(dirname "$(readlink -f "$(command -v rabbitmq-server)")")
  fi
fi

RABBIT_USER=''
if [[ $(id -u) -eq 0 ]] && id rabbitmq >/dev/null 2>&1; then
  RABBIT_USER=rabbitmq
  RABBIT_HOME=$(getent passwd rabbitmq | cut -d: -f6)
fi

# as_rabbit COMMAND...: runs COMMAND as the user whose cookie the nodes share.
as_rabbit() {
  if [[ -n $RABBIT_USER ]]; then
    runuser -u "$RABBIT_USER" -- env HOME="$RABBIT_HOME" "$@"
  else
    "$@"
  fi
}
as_rabbit_prefix() { # the same, as words to put before a command (for setsid)
  if [[ -n $RABBIT_USER ]]; then echo runuser; echo -u; echo "$RABBIT_USER"; echo --; echo env; echo "HOME=$RABBIT_HOME"; fi
}

# The environment of node N (server and CLI alike), as NAME=VALUE words for env(1).
rabbit_env() {
  local dir
  dir=$(rabbit_dir "$1")
  echo "RABBITMQ_NODENAME=$(rabbit_node "$1")"
  echo "RABBITMQ_NODE_IP_ADDRESS=127.0.0.1"
  echo "RABBITMQ_NODE_PORT=$(rabbit_amqp_port "$1")"
  echo "RABBITMQ_DIST_PORT=$(rabbit_dist_port "$1")"
  echo "RABBITMQ_CONF_ENV_FILE=$dir/rabbitmq-env.conf"
  echo "RABBITMQ_CONFIG_FILE=$dir/rabbitmq.conf"
  echo "RABBITMQ_ADVANCED_CONFIG_FILE=$dir/advanced.config"
  echo "RABBITMQ_ENABLED_PLUGINS_FILE=$dir/enabled_plugins"
  echo "RABBITMQ_MNESIA_BASE=$dir/mnesia"
  echo "RABBITMQ_LOG_BASE=$dir/log"
  echo "RABBITMQ_PID_FILE=$dir/rabbit.pid"
  echo "ERL_EPMD_ADDRESS=127.0.0.1"
  echo "ERL_CRASH_DUMP=$dir/erl_crash.dump"
  echo "ERL_FLAGS=-kernel inet_dist_use_interface {127,0,0,1}"
}

# rctl N ARGS...: rabbitmqctl against node N.
rctl() {
  local n=$1
  shift
  local envs
  mapfile -t envs < <(rabbit_env "$n")
  (cd "$(rabbit_dir "$n")" && as_rabbit env "${envs[@]}" "$RABBIT_BIN/rabbitmqctl" -q -n "$(rabbit_node "$n")" "$@")
}

# beam's command line does not name the node; its environment does.
rabbit_pid() { pid_of "$(rabbit_dir "$1")/rabbit.pid" "RABBITMQ_NODENAME=$(rabbit_node "$1")" environ; }

rabbit_write_config() {
  local n=$1 dir
  dir=$(rabbit_dir "$n")
  mkdir -p "$dir/mnesia" "$dir/log"
  : >"$dir/rabbitmq-env.conf" # not /etc/rabbitmq/rabbitmq-env.conf (the default node's name)
  echo '[].' >"$dir/advanced.config"
  echo '[rabbitmq_management].' >"$dir/enabled_plugins"
  cat >"$dir/rabbitmq.conf" <<EOF
# seat-saga cluster node $n ($(rabbit_node "$n")), written by tools/cluster/rabbit.sh
listeners.tcp.1 = 127.0.0.1:$(rabbit_amqp_port "$n")
management.tcp.ip = 127.0.0.1
management.tcp.port = $(rabbit_mgmt_port "$n")
# guest/guest from 127.0.0.1 only (the default, said out loud)
loopback_users.guest = true
# a quick restart of a killed node is not a partition to heal by hand
cluster_partition_handling = pause_minority
vm_memory_high_watermark.relative = 0.2
disk_free_limit.absolute = 50MB
log.file.level = info
log.console = false
EOF
  if [[ -n $RABBIT_USER ]]; then chown -R "$RABBIT_USER:" "$dir"; fi
}

# Starts node N in the background unless it runs already (its data, if any, is kept).
rabbit_start() {
  local n=$1 dir envs
  dir=$(rabbit_dir "$n")
  if rabbit_pid "$n" >/dev/null; then
    log "rabbit-$n ($(rabbit_node "$n")) is running already"
    return 0
  fi
  [[ -x $RABBIT_BIN/rabbitmq-server ]] || die "rabbitmq-server not found (set RABBITMQ_SCRIPTS_DIR)"
  if port_in_use "$(rabbit_amqp_port "$n")"; then
    die "port $(rabbit_amqp_port "$n") is taken by a process that is not rabbit-$n"
  fi
  [[ -d $CLUSTER_DIR ]] || mkdir -p "$CLUSTER_DIR"
  chmod 755 "$CLUSTER_DIR"
  rabbit_write_config "$n"
  rm -f "$dir/rabbit.pid"
  mapfile -t envs < <(as_rabbit_prefix; echo env; rabbit_env "$n")
  log "starting rabbit-$n: $(rabbit_node "$n") amqp 127.0.0.1:$(rabbit_amqp_port "$n") management :$(rabbit_mgmt_port "$n") dist :$(rabbit_dist_port "$n")"
  # setsid -f: a session of its own, so the node outlives this script.
  (cd "$dir" && close_inherited_fds && setsid -f "${envs[@]}" "$RABBIT_BIN/rabbitmq-server" \
    >>"$dir/log/startup.log" 2>&1 </dev/null)
}

# Waits until node N has booted (pid file written, rabbit app running).
rabbit_wait() {
  local n=$1 dir
  dir=$(rabbit_dir "$n")
  if ! rctl "$n" wait --timeout "$RABBIT_TIMEOUT" "$dir/rabbit.pid" >/dev/null 2>&1; then
    tail -n 20 "$dir/log/startup.log" >&2 2>/dev/null || true
    die "rabbit-$n ($(rabbit_node "$n")) did not boot within ${RABBIT_TIMEOUT}s (logs: $dir/log)"
  fi
  log "rabbit-$n is up (pid $(rabbit_pid "$n"))"
}

# rabbit_running_nodes N: the running_nodes of the cluster as node N sees it, one per line.
rabbit_running_nodes() {
  rctl "$1" cluster_status --formatter json 2>/dev/null |
    grep -o '"running_nodes":\[[^]]*\]' | grep -o '"[^"]*@[^"]*"' | tr -d '"'
}

rabbit_is_running_in() { # rabbit_is_running_in N M: node M lists node N as running
  rabbit_running_nodes "$2" | grep -qxF "$(rabbit_node "$1")"
}

rabbit_in_cluster_of() { # rabbit_in_cluster_of N M: node N is a member of the cluster node M runs
  rctl "$2" cluster_status --formatter json 2>/dev/null |
    grep -o '"disk_nodes":\[[^]]*\]' | grep -qF "\"$(rabbit_node "$1")\""
}

# Makes node N (2 or 3) a member of node 1's cluster, unless it is one.
rabbit_join() {
  local n=$1
  if rabbit_in_cluster_of "$n" 1; then
    log "rabbit-$n is a member of rabbit-1's cluster already"
    return 0
  fi
  log "rabbit-$n joins $(rabbit_node 1): stop_app, reset, join_cluster, start_app"
  local step cli_log
  cli_log=$(rabbit_dir "$n")/log/cli.log
  for step in stop_app reset "join_cluster $(rabbit_node 1)" start_app; do
    # shellcheck disable=SC2086 # the step's words
    rctl "$n" $step >>"$cli_log" 2>&1 || { tail -n 20 "$cli_log" >&2; die "rabbit-$n: $step failed"; }
  done
}

# Waits until node N shows as running in the cluster_status of another running node.
rabbit_wait_member() {
  local n=$1 other='' o
  for o in "${RABBIT_IDS[@]}"; do
    [[ $o == "$n" ]] && continue
    if rabbit_pid "$o" >/dev/null; then other=$o && break; fi
  done
  other=${other:-$n} # the others are down: the node's own view
  wait_for "rabbit-$n running in rabbit-$other's cluster_status" "$RABBIT_TIMEOUT" \
    rabbit_is_running_in "$n" "$other"
  log "rabbit-$n is running in the cluster: $(rabbit_running_nodes "$n" | tr '\n' ' ')"
}

rabbit_stop() {
  local n=$1 pid
  if pid=$(rabbit_pid "$n"); then
    log "stopping rabbit-$n (pid $pid)"
    stop_pid "$pid" 60
  fi
}

rabbit_kill() {
  local n=$1 pid
  pid=$(rabbit_pid "$n") || die "rabbit-$n is not running"
  kill -KILL "$pid"
  log "rabbit-$n ($(rabbit_node "$n"), pid $pid) killed with SIGKILL"
}
