#!/usr/bin/env bash
# Measure how long callers wait when a 3-process cluster loses the process that leads it,
# duro and etcd on this machine, back to back, and print a table of both (README.md,
# "Failover").
#
#   scripts/failover.sh
#
# Each run starts a fresh cluster of 3 real processes on loopback, fsync on, drives 16
# callers writing 256 B values over 10,000 objects/keys (closed loop, each side's client
# with its defaults, calls bounded at 30 s), and FAILOVER_AT into a FAILOVER_TIME window
# strikes the process that leads the most raft groups, the meta group included (etcd: its
# leader):
#   kill       SIGKILL; it stays down
#   pause      SIGSTOP, SIGCONT at the end of the window
#   partition  every link to and from its peers cut both ways, healed at the end; clients
#              still reach it
# duro's side is `duro bench failover` (bench/jepsen's cluster, a proxy on every link);
# etcd's is `etcdbench failover` (bench/etcd, a proxy in front of every member's peer and
# client ports, which tells the sending member of each peer connection from etcd's
# X-Server-From header). Both sides' traffic, client and peer, crosses one proxy of the
# harness, so their p99s are not those of scripts/bench-vs-etcd.sh.
#
# Reported per side and fault: the worst call (failed calls included), the whole seconds
# with fewer than 100 calls answered, the errors callers saw, and the p99 of the window.
# The machine is shared and noisy, so ROUNDS repeats every fault on both sides, the order
# of the two sides alternating from round to round, and the table reports medians, with
# every round's figures listed below it.
#
# Environment (defaults in brackets):
#   ROUNDS [3]                      rounds (the median is reported)
#   FAULTS [kill pause partition]   faults to run, in order
#   FAILOVER_TIME [20s]             measured window   FAILOVER_AT [8s]  when to strike
#   CALLERS [16]                    closed-loop callers
#   BENCH_DIR [/tmp/failover]       work dir          ETCD_PORT [17500] etcd members on +1..+3, +11..+13
# Requires go and jq. Results: $BENCH_DIR/rN/SIDE-FAULT.json, node logs of a failed run in
# the directory it names; the table on stdout. About 55 s per round and fault (both sides),
# 8.5 minutes for the defaults.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
DIR=${BENCH_DIR:-/tmp/failover}
ROUNDS=${ROUNDS:-3}
read -r -a FAULTS <<<"${FAULTS:-kill pause partition}"
T=${FAILOVER_TIME:-20s}
AT=${FAILOVER_AT:-8s}
CALLERS=${CALLERS:-16}
EP=${ETCD_PORT:-17500}

die() { echo "failover: $*" >&2; exit 1; }
for c in go jq; do command -v $c >/dev/null || die "$c is required"; done
for f in "${FAULTS[@]}"; do
  case $f in kill | pause | partition) ;; *) die "FAULTS: unknown fault $f (kill, pause, partition)" ;; esac
done

rm -rf "$DIR" && mkdir -p "$DIR"
echo "== building into $DIR"
(cd "$ROOT" && go build -o "$DIR/duro" ./cmd/duro)
(cd "$ROOT/bench/etcd" && go build -o "$DIR/etcdbench" .)
START=$SECONDS

# side SYSTEM FAULT: one run, JSON to $OUT/SYSTEM-FAULT.json, progress to stderr.
side() {
  local sys=$1 f=$2 out=$OUT/$1-$2.json
  echo "== $sys $f"
  case $sys in
    duro) "$DIR/duro" bench failover --fault "$f" --at "$AT" --time "$T" --callers "$CALLERS" --json --quiet >"$out" ;;
    etcd) "$DIR/etcdbench" failover --fault "$f" --at "$AT" --time "$T" --callers "$CALLERS" --base-port "$EP" --json --quiet >"$out" ;;
  esac
  jq -r '"   \(.fault) of \(.victim) (\(.victim_why)) at \(.struck_at_s * 100 | round / 100)s: worst \(.worst_ms | round) ms, \(.slow_intervals) slow seconds, \(.errors) errors, p99 \(.p99_ms * 10 | round / 10) ms"' "$out"
}

for ((r = 1; r <= ROUNDS; r++)); do
  OUT=$DIR/r$r
  mkdir -p "$OUT"
  echo "==== round $r of $ROUNDS"
  for f in "${FAULTS[@]}"; do
    if ((r % 2 == 1)); then
      side duro "$f"
      side etcd "$f"
    else
      side etcd "$f"
      side duro "$f"
    fi
  done
done
ELAPSED=$((SECONDS - START))

# ---- the table ----
# med FILE FILTER: the median over the rounds; all FILE FILTER: every round's value.
med() { jq -s "map($2) | sort | if length % 2 == 1 then .[length / 2 | floor] else (.[length / 2 - 1] + .[length / 2]) / 2 end" "$DIR"/r*/"$1.json"; }
all() { jq -s -r "map($2 | . * 10 | round / 10 | tostring) | join(\", \")" "$DIR"/r*/"$1.json"; }
fmt() { jq -rn --argjson v "$1" "\$v | $2"; }
row() { printf '| %-9s | %-38s | %10s | %10s |\n' "$@"; }

echo
echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), $(free -g | awk '/Mem:/{print $2}') GiB, $(uname -sr)"
echo "versions: $(go version | cut -d' ' -f3-4); etcd $(cd "$ROOT/bench/etcd" && go list -m -f '{{.Version}}' go.etcd.io/etcd/server/v3); duro $(git -C "$ROOT" describe --always --dirty 2>/dev/null || echo unknown)"
echo "3 processes per cluster, fsync on; $CALLERS callers writing; the fault at $AT of a $T window; median of $ROUNDS rounds (${ELAPSED}s in all)"
echo
row "fault" "figure (median of $ROUNDS)" "duro" "etcd"
printf '|%s|%s|%s|%s|\n' "$(printf -- '-%.0s' {1..11})" "$(printf -- '-%.0s' {1..40})" "$(printf -- '-%.0s' {1..12})" "$(printf -- '-%.0s' {1..12})"
FIGS=("worst call, ms (failed calls included)|.worst_ms|round"
  "seconds with < 100 calls answered|.slow_intervals|round"
  "errors seen by callers|.errors|round"
  "p99 over the window, ms|.p99_ms|. * 10 | round / 10")
for f in "${FAULTS[@]}"; do
  for fig in "${FIGS[@]}"; do
    IFS='|' read -r label filter shape <<<"$fig"
    row "$f" "$label" "$(fmt "$(med "duro-$f" "$filter")" "$shape")" "$(fmt "$(med "etcd-$f" "$filter")" "$shape")"
  done
done
echo
echo "every round (duro | etcd):"
for f in "${FAULTS[@]}"; do
  for fig in "${FIGS[@]}"; do
    IFS='|' read -r label filter _ <<<"$fig"
    printf '  %-9s %-24s %s | %s\n' "$f" "${filter#.}" "$(all "duro-$f" "$filter")" "$(all "etcd-$f" "$filter")"
  done
done
echo
echo "JSON results, with each second's answered calls and the timeline, in $DIR"
