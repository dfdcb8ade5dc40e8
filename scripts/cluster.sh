#!/usr/bin/env bash
# Run a local duro cluster of real `duro server` processes on loopback.
#
#   scripts/cluster.sh start [3|5]   build duro, start N nodes (default 3), wait until ready
#   scripts/cluster.sh status        processes, then `duro status`
#   scripts/cluster.sh kill ID       SIGKILL one node (e.g. n2): a crash, not a shutdown
#   scripts/cluster.sh restart ID    start a killed or stopped node again from its data
#   scripts/cluster.sh stop          SIGTERM every node (clean shutdown) and wait
#
# Node nI listens on 127.0.0.1:710I (peers and clients) and 127.0.0.1:718I (HTTP), the
# ports `duro call` and `duro status` use by default. Data, logs and pid files live under
# $DURO_CLUSTER_DIR (default /tmp/duro-cluster): nI/ data, nI.log, nI.pid.
set -euo pipefail

DIR=${DURO_CLUSTER_DIR:-/tmp/duro-cluster}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BIN=$DIR/duro

die() { echo "cluster.sh: $*" >&2; exit 1; }

nodes() { cat "$DIR/nodes" 2>/dev/null || echo 3; }

peers() {
  local n=$1 p="" i
  for ((i = 1; i <= n; i++)); do p+="${p:+,}n$i=127.0.0.1:710$i"; done
  echo "$p"
}

endpoints() {
  local n=$1 e="" i
  for ((i = 1; i <= n; i++)); do e+="${e:+,}127.0.0.1:710$i"; done
  echo "$e"
}

alive() { [[ -f $DIR/$1.pid ]] && kill -0 "$(cat "$DIR/$1.pid")" 2>/dev/null; }

start_node() {
  local id=$1 n=$2 i=${1#n}
  alive "$id" && { echo "$id already running (pid $(cat "$DIR/$id.pid"))"; return; }
  "$BIN" server --id "$id" --data-dir "$DIR/$id" --listen "127.0.0.1:710$i" \
    --http "127.0.0.1:718$i" --peers "$(peers "$n")" --replicas 3 \
    >>"$DIR/$id.log" 2>&1 &
  echo $! >"$DIR/$id.pid"
  echo "started $id (pid $!, log $DIR/$id.log)"
}

wait_ready() {
  local n=$1 i deadline=$((SECONDS + 60))
  for ((i = 1; i <= n; i++)); do
    alive "n$i" || continue
    until curl -fs "http://127.0.0.1:718$i/readyz" >/dev/null 2>&1; do
      alive "n$i" || die "n$i exited; see $DIR/n$i.log"
      ((SECONDS < deadline)) || die "n$i not ready after 60s; see $DIR/n$i.log"
      sleep 0.2
    done
  done
  echo "cluster ready: endpoints $(endpoints "$n")"
}

case ${1:-} in
start)
  n=${2:-3}
  [[ $n == 3 || $n == 5 ]] || die "start wants 3 or 5 nodes, got $n"
  command -v curl >/dev/null || die "curl is needed to wait for readiness"
  mkdir -p "$DIR"
  if [[ -f $DIR/nodes && $(nodes) != "$n" ]]; then
    die "$DIR holds a $(nodes)-node cluster; stop it and remove $DIR first"
  fi
  echo "$n" >"$DIR/nodes"
  echo "building duro into $BIN"
  (cd "$ROOT" && go build -o "$BIN" ./cmd/duro)
  for ((i = 1; i <= n; i++)); do start_node "n$i" "$n"; done
  wait_ready "$n"
  ;;
status)
  n=$(nodes)
  for ((i = 1; i <= n; i++)); do
    if alive "n$i"; then echo "n$i running (pid $(cat "$DIR/n$i.pid"))"; else echo "n$i down"; fi
  done
  [[ -x $BIN ]] && "$BIN" status --endpoints "$(endpoints "$n")" || true
  ;;
kill)
  id=${2:-}
  [[ -n $id ]] || die "kill wants a node ID, e.g. n2"
  alive "$id" || die "$id is not running"
  kill -9 "$(cat "$DIR/$id.pid")"
  rm -f "$DIR/$id.pid"
  echo "killed $id (SIGKILL)"
  ;;
restart)
  id=${2:-}
  [[ -n $id ]] || die "restart wants a node ID, e.g. n2"
  start_node "$id" "$(nodes)"
  wait_ready "$(nodes)"
  ;;
stop)
  n=$(nodes)
  for ((i = 1; i <= n; i++)); do
    alive "n$i" && kill -TERM "$(cat "$DIR/n$i.pid")"
  done
  for ((i = 1; i <= n; i++)); do
    while alive "n$i"; do sleep 0.1; done
    rm -f "$DIR/n$i.pid"
  done
  echo "stopped"
  ;;
*)
  sed -n '2,12p' "$0" | sed 's/^# \{0,1\}//'
  exit 2
  ;;
esac
