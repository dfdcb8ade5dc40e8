// Command etcdbench is the etcd half of duro's comparisons with the strongly consistent
// store one would otherwise pick (scripts/bench-vs-etcd.sh and scripts/failover.sh run
// both halves).
//
//	etcdbench cluster [--dir DIR] [--base-port 17400]   3 members, each its own process
//	etcdbench load --endpoints ... --workload write|seq|hot|read [--json]
//	etcdbench failover --fault kill|pause|partition [--at 8s] [--time 20s] [--json]
//
// failover is the etcd half of `duro bench failover` (scripts/failover.sh runs both): it
// starts its own cluster with a proxy of its own in front of every member's client and
// peer ports, writes with --callers, and strikes the leader.
//
// It lives in its own module so that etcd's dependencies never enter duro's go.mod; it
// uses duro's bench/load (through a replace of the parent module) so both sides schedule,
// measure and print results the same way.
//
// The cluster is etcd's defaults: fsync on every commit (UnsafeNoFsync false), 100 ms
// heartbeats, members on loopback, data in a temporary directory removed on exit.
package main
