#!/usr/bin/env bash
# npm run test:cluster: the suites of .mocharc.cluster.json (the order, pay, async and expiry
# suites, the cluster clients, the failover drills) on a Redis Cluster and a 3-node RabbitMQ
# cluster with quorum queues. Uses the clusters named by REDIS_CLUSTER_NODES, AMQP_URL and
# RABBITMQ_NODES when all three are set; else starts tools/cluster's (cluster.sh up) and stops
# them afterwards (KEEP_CLUSTER=1 keeps them). Extra arguments go to mocha.
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."

started=0
if [[ -z ${REDIS_CLUSTER_NODES:-} || -z ${AMQP_URL:-} || -z ${RABBITMQ_NODES:-} ]]; then
  if ! settings=$(bash tools/cluster/cluster.sh up); then
    echo "[test:cluster] cluster.sh up failed" >&2
    exit 1
  fi
  set -a
  eval "$(grep -E '^[A-Z_]+=' <<<"$settings")"
  set +a
  started=1
fi
export QUEUE_TYPE=${QUEUE_TYPE:-quorum}
# tools/cluster's rabbit-1 serves the management API on 15701.
export RABBITMQ_MANAGEMENT_URL=${RABBITMQ_MANAGEMENT_URL:-http://127.0.0.1:15701}

npx mocha --config .mocharc.cluster.json "$@"
status=$?
if [[ $started == 1 && -z ${KEEP_CLUSTER:-} ]]; then
  bash tools/cluster/cluster.sh down >/dev/null || echo "[test:cluster] cluster.sh down failed" >&2
fi
exit $status
