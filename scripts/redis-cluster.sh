#!/usr/bin/env bash
# A local Redis Cluster of 3 masters (no replicas) on loopback, for tests and CI:
#   scripts/redis-cluster.sh start [BASE_PORT]   # ports BASE_PORT..BASE_PORT+2 (default 7101)
#   scripts/redis-cluster.sh stop  [BASE_PORT]
#   scripts/redis-cluster.sh nodes [BASE_PORT]   # prints REDIS_CLUSTER_NODES
# Each node runs with AOF (appendfsync always) and noeviction, like the production settings the
# bridge expects; data lives under ${REDIS_CLUSTER_DIR:-.data/redis-cluster}/<port>. `start`
# returns once every slot is served (cluster_state:ok). `stop` shuts the nodes down and removes
# their data.
set -euo pipefail
cmd=${1:-}
base=${2:-7101}
dir=${REDIS_CLUSTER_DIR:-.data/redis-cluster}
ports=("$base" "$((base + 1))" "$((base + 2))")

nodes() {
  local out=()
  for p in "${ports[@]}"; do out+=("127.0.0.1:$p"); done
  (IFS=,; echo "${out[*]}")
}

case "$cmd" in
start)
  for p in "${ports[@]}"; do
    if redis-cli -p "$p" ping >/dev/null 2>&1; then
      echo "port $p already answers: run '$0 stop $base' first, or choose another base port" >&2
      exit 1
    fi
  done
  for p in "${ports[@]}"; do
    mkdir -p "$dir/$p"
    rm -f "$dir/$p/nodes.conf"
    redis-server --port "$p" --bind 127.0.0.1 --daemonize yes \
      --dir "$(cd "$dir/$p" && pwd)" --logfile redis.log --pidfile "$(cd "$dir/$p" && pwd)/redis.pid" \
      --cluster-enabled yes --cluster-config-file nodes.conf --cluster-node-timeout 5000 \
      --appendonly yes --appendfsync always --save '' --maxmemory-policy noeviction
  done
  for p in "${ports[@]}"; do
    for _ in $(seq 1 100); do
      redis-cli -p "$p" ping >/dev/null 2>&1 && break
      sleep 0.05
    done
  done
  hosts=()
  for p in "${ports[@]}"; do hosts+=("127.0.0.1:$p"); done
  redis-cli --cluster create "${hosts[@]}" --cluster-replicas 0 --cluster-yes >/dev/null
  for _ in $(seq 1 200); do
    ok=1
    for p in "${ports[@]}"; do
      redis-cli -p "$p" cluster info 2>/dev/null | grep -q '^cluster_state:ok' || ok=0
    done
    [ "$ok" = 1 ] && break
    sleep 0.05
  done
  if [ "$ok" != 1 ]; then
    echo "the cluster did not reach cluster_state:ok" >&2
    exit 1
  fi
  nodes
  ;;
stop)
  for p in "${ports[@]}"; do
    redis-cli -p "$p" shutdown nosave >/dev/null 2>&1 || true
  done
  for p in "${ports[@]}"; do
    for _ in $(seq 1 100); do
      redis-cli -p "$p" ping >/dev/null 2>&1 || break
      sleep 0.05
    done
    rm -rf "${dir:?}/$p"
  done
  ;;
nodes)
  nodes
  ;;
*)
  echo "usage: $0 start|stop|nodes [BASE_PORT]" >&2
  exit 2
  ;;
esac
