#!/usr/bin/env bash
# Measure duro against a 3-member etcd cluster on this machine, back to back, and print
# the ratios, each beside duro's goal for it (README.md, "Performance, measured against
# etcd").
#
#   scripts/bench-vs-etcd.sh
#
# Both clusters are 3 real processes on loopback with fsync on: every write is replicated
# to a quorum and fsynced before it is acknowledged. Each side gets, in order: an idle
# window (CPU of the 3 processes), then 128 callers writing 256 B values over 10,000
# objects/keys, 1 caller writing sequentially, and 128 callers doing read-modify-write of
# ONE object/key (duro: Counter.Add; etcd: concurrency.NewSTM), and linearizable reads.
#
# The machine is shared and noisy, so ROUNDS alternates the two sides that many times
# (duro, etcd, duro, etcd, ...; each round on fresh clusters) and the table reports the
# median of each figure over the rounds, with every round's figures listed below it.
#
# Environment (defaults in brackets):
#   ROUNDS [3]        duro/etcd rounds, alternating  (the median is reported)
#   BENCH_TIME [20s]  measured time per workload     BENCH_WARMUP [3s]  unmeasured lead-in
#   IDLE_TIME [20s]   idle CPU window                 BENCH_DIR [/tmp/bench-vs-etcd] work dir
#   DURO_PORT [17100] duro nodes on +1..+3, HTTP +81..+83
#   ETCD_PORT [17400] etcd clients on +1..+3, peers +11..+13
# Requires go, curl and jq. Results: $BENCH_DIR/rN/*.json, the table on stdout.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
DIR=${BENCH_DIR:-/tmp/bench-vs-etcd}
ROUNDS=${ROUNDS:-3}
T=${BENCH_TIME:-20s}
W=${BENCH_WARMUP:-3s}
IDLE=${IDLE_TIME:-20s}
DP=${DURO_PORT:-17100}
EP=${ETCD_PORT:-17400}

die() { echo "bench-vs-etcd: $*" >&2; exit 1; }
for c in go curl jq; do command -v $c >/dev/null || die "$c is required"; done

rm -rf "$DIR" && mkdir -p "$DIR"
echo "== building into $DIR"
(cd "$ROOT" && go build -o "$DIR/duro" ./cmd/duro)
(cd "$ROOT/bench/etcd" && go build -o "$DIR/etcdbench" .)

DURO_PIDS=()
ETCD_PID=
cleanup() {
  for p in "${DURO_PIDS[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
  [[ -n $ETCD_PID ]] && kill -TERM "$ETCD_PID" 2>/dev/null || true
  wait 2>/dev/null || true
}
trap cleanup EXIT

# run SYSTEM NAME CMD...: one workload, JSON to $OUT/SYSTEM-NAME.json, progress to stderr.
run() {
  local sys=$1 name=$2
  shift 2
  echo "== $sys $name"
  "$@" --json >"$OUT/$sys-$name.json"
  jq -r '"   \(.ops_per_sec|floor) ops/s  p50 \(.latency.p50_ms) ms  p99 \(.latency.p99_ms) ms  errors \(.errors)"' "$OUT/$sys-$name.json"
}

duro_round() {
  peers="n1=127.0.0.1:$((DP + 1)),n2=127.0.0.1:$((DP + 2)),n3=127.0.0.1:$((DP + 3))"
  deps="127.0.0.1:$((DP + 1)),127.0.0.1:$((DP + 2)),127.0.0.1:$((DP + 3))"
  echo "== starting duro: 3 processes, data in $OUT/duro-data"
  for i in 1 2 3; do
    "$DIR/duro" server --id "n$i" --data-dir "$OUT/duro-data/n$i" --listen "127.0.0.1:$((DP + i))" \
      --http "127.0.0.1:$((DP + 80 + i))" --peers "$peers" --log-level warn >"$OUT/duro-n$i.log" 2>&1 &
    DURO_PIDS+=($!)
  done
  deadline=$((SECONDS + 60))
  for i in 1 2 3; do
    until curl -fs "http://127.0.0.1:$((DP + 80 + i))/readyz" >/dev/null 2>&1; do
      kill -0 "${DURO_PIDS[$((i - 1))]}" 2>/dev/null || die "duro n$i exited; see $OUT/duro-n$i.log"
      ((SECONDS < deadline)) || die "duro n$i not ready after 60s"
      sleep 0.2
    done
  done
  sleep 3 # let elections and leadership balancing finish before measuring idle
  echo "== duro idle CPU over $IDLE"
  "$DIR/duro" bench idle --pids "$(IFS=,; echo "${DURO_PIDS[*]}")" --time "$IDLE" --json >"$OUT/duro-idle.json"
  B=("$DIR/duro" bench --endpoints "$deps" --time "$T" --warmup "$W" --quiet)
  run duro write "${B[@]}" --workload write --callers 128 --objects 10000 --value-size 256
  run duro seq "${B[@]}" --workload write --callers 1 --objects 10000 --value-size 256
  run duro hot "${B[@]}" --workload hot --callers 128
  run duro read "${B[@]}" --workload read --callers 128 --objects 10000
  echo "== stopping duro"
  for p in "${DURO_PIDS[@]}"; do kill -TERM "$p"; done
  for p in "${DURO_PIDS[@]}"; do wait "$p" || true; done
  DURO_PIDS=()
}

etcd_round() {
  echo "== starting etcd: 3 member processes"
  "$DIR/etcdbench" cluster --base-port "$EP" >"$OUT/etcd-cluster.out" 2>&1 &
  ETCD_PID=$!
  deadline=$((SECONDS + 90))
  until grep -q '^pids ' "$OUT/etcd-cluster.out"; do
    kill -0 "$ETCD_PID" 2>/dev/null || die "etcd cluster exited: $(cat "$OUT/etcd-cluster.out")"
    ((SECONDS < deadline)) || die "etcd not ready after 90s"
    sleep 0.2
  done
  eeps=$(awk '/^endpoints /{print $2}' "$OUT/etcd-cluster.out")
  epids=$(awk '/^pids /{print $2}' "$OUT/etcd-cluster.out")
  sleep 3
  echo "== etcd idle CPU over $IDLE"
  "$DIR/duro" bench idle --pids "$epids" --time "$IDLE" --json >"$OUT/etcd-idle.json"
  E=("$DIR/etcdbench" load --endpoints "$eeps" --time "$T" --warmup "$W" --quiet)
  run etcd write "${E[@]}" --workload write --callers 128 --conns 16 --keys 10000 --value-size 256
  run etcd seq "${E[@]}" --workload seq --keys 10000 --value-size 256
  run etcd hot "${E[@]}" --workload hot --callers 128 --conns 16
  run etcd read "${E[@]}" --workload read --callers 128 --conns 16 --keys 10000
  echo "== stopping etcd"
  kill -TERM "$ETCD_PID"
  wait "$ETCD_PID" || true
  ETCD_PID=
}

for ((r = 1; r <= ROUNDS; r++)); do
  OUT=$DIR/r$r
  mkdir -p "$OUT"
  echo "==== round $r of $ROUNDS"
  duro_round
  etcd_round
done

# ---- the table ----
# j FILE FILTER: the median over the rounds; all FILE FILTER: every round's value.
j() { jq -s "map($2) | sort | if length % 2 == 1 then .[length / 2 | floor] else (.[length / 2 - 1] + .[length / 2]) / 2 end" "$DIR"/r*/"$1.json"; }
all() { jq -s -r "map($2 | . * 100 | round / 100 | tostring) | join(\", \")" "$DIR"/r*/"$1.json"; }
ratio() { jq -rn --argjson a "$1" --argjson b "$2" 'if $b == 0 then "-" else ($a / $b * 100 | round / 100 | tostring) + "x" end'; }
row() { # label duro etcd unit target
  printf '| %-52s | %12s | %12s | %9s | %-10s |\n' "$1" "$2 $4" "$3 $4" "$(ratio "$2" "$3")" "$5"
}
r0() { jq -rn --argjson v "$1" '$v | round'; }
r2() { jq -rn --argjson v "$1" '$v * 100 | round / 100'; }

echo
echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), $(free -g | awk '/Mem:/{print $2}') GiB, $(uname -sr)"
echo "versions: $(go version | cut -d' ' -f3-4); etcd $(cd "$ROOT/bench/etcd" && go list -m -f '{{.Version}}' go.etcd.io/etcd/server/v3); duro $(git -C "$ROOT" describe --always --dirty 2>/dev/null || echo unknown)"
echo "each workload: $W warmup + $T measured; idle: $IDLE; 3 processes per cluster, fsync on; median of $ROUNDS alternating rounds"
echo
printf '| %-52s | %12s | %12s | %9s | %-10s |\n' "target" "duro" "etcd" "duro/etcd" "goal"
printf '|%s|%s|%s|%s|%s|\n' "$(printf -- '-%.0s' {1..54})" "$(printf -- '-%.0s' {1..14})" "$(printf -- '-%.0s' {1..14})" "$(printf -- '-%.0s' {1..11})" "$(printf -- '-%.0s' {1..12})"
row "128 callers, 256 B writes over 10,000 objects: ops/s" "$(r0 "$(j duro-write .ops_per_sec)")" "$(r0 "$(j etcd-write .ops_per_sec)")" "/s" ">= 2x"
row "128 callers, 256 B writes: p99" "$(r2 "$(j duro-write .latency.p99_ms)")" "$(r2 "$(j etcd-write .latency.p99_ms)")" "ms" "<= 1x"
row "1 caller, sequential writes: p50" "$(r2 "$(j duro-seq .latency.p50_ms)")" "$(r2 "$(j etcd-seq .latency.p50_ms)")" "ms" "<= 1x"
row "128 callers, read-modify-write of ONE object: ops/s" "$(r0 "$(j duro-hot .ops_per_sec)")" "$(r0 "$(j etcd-hot .ops_per_sec)")" "/s" ">= 50x"
row "idle 3-process cluster: CPU, % of one core" "$(r2 "$(j duro-idle .percent_of_one_core)")" "$(r2 "$(j etcd-idle .percent_of_one_core)")" "%" "duro < 3"
row "(info) 128 callers, linearizable reads: ops/s" "$(r0 "$(j duro-read .ops_per_sec)")" "$(r0 "$(j etcd-read .ops_per_sec)")" "/s" "-"
echo
echo "every round (duro | etcd):"
for f in "write .ops_per_sec" "write .latency.p99_ms" "seq .latency.p50_ms" "hot .ops_per_sec" "idle .percent_of_one_core" "read .ops_per_sec"; do
  set -- $f
  printf '  %-6s %-22s %s | %s\n' "$1" "$2" "$(all "duro-$1" "$2")" "$(all "etcd-$1" "$2")"
done
echo
errs=$(jq -s 'map(.errors // 0) | add' "$DIR"/r*/duro-*.json "$DIR"/r*/etcd-[whsr]*.json)
echo "failed operations across all runs: $errs (JSON results in $DIR)"
