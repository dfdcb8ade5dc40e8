// Command etcdbench is the etcd half of duro's comparison with the strongly consistent
// store one would otherwise pick (scripts/bench-vs-etcd.sh runs both halves).
//
//	etcdbench cluster [--dir DIR] [--base-port 17400]   3 members, each its own process
//	etcdbench load --endpoints ... --workload write|seq|hot|read [--json]
//
// It lives in its own module so that etcd's dependencies never enter duro's go.mod; it
// uses duro's bench/load (through a replace of the parent module) so both sides schedule,
// measure and print results the same way.
//
// The cluster is etcd's defaults: fsync on every commit (UnsafeNoFsync false), 100 ms
// heartbeats, members on loopback, data in a temporary directory removed on exit.
package main
