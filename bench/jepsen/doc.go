// Package jepsen is duro's Jepsen-style correctness harness: it starts a real cluster
// of `duro server` processes on loopback, drives it through the Go SDK while a nemesis
// injects faults, heals, and judges the history.
//
// The pieces, each usable alone (the process-level fault tests, faults_test.go, use the
// cluster directly):
//
//   - Cluster: 3 or 5 node processes. Every directed link between two nodes is a Proxy
//     of the harness's (node i dials node j's raft traffic through links[i][j], via
//     `duro server --dial-addrs`), so partitions, one-way cuts, delay and loss need no
//     root. Each node's canonical address — the one in --peers, which the SDK learns from
//     the topology — is a client proxy in front of it, so client connections can be reset
//     too. SIGKILL/restart and SIGSTOP/SIGCONT act on the processes.
//   - FailoverTarget: the cluster as the target of a bench/failover run (`duro bench
//     failover`): the node leading the most groups is killed, paused or cut off from its
//     peers while callers write (TestFailoverWindowAfterLeaderKill bounds the window).
//   - Workloads (register, counter, set, bank, alarms) run on Workers, one SDK client
//     each, and record every operation as ok, fail (definitely did not happen) or info
//     (unknown).
//   - Nemesis: a seeded schedule of faults (kill, pause, partition, slow, reset), each
//     healed before the final reads.
//   - Checker: porcupine per object for register and counter, where an unknown outcome
//     is an operation that never returns; and the workloads' invariants (a counter's
//     reads lie between the acknowledged and the attempted increments; a set loses no
//     acknowledged element; a bank's total never changes; every acknowledged reminder is
//     delivered, none before its time). Nothing acknowledged may be missing from the
//     final reads.
//   - Report: history.jsonl, summary.json, porcupine's HTML per object, latency.svg with
//     the faults shaded, and every node's log, in one directory.
//
// Invariants of the harness itself: a run's choices (the fault schedule, every worker's
// operations) are a function of its seed; faults are always healed, even when the run is
// interrupted, before anything is judged; and a run whose checker found a violation is
// reported INVALID, never as an error of the harness.
package jepsen
