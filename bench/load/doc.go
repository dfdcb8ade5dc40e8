// Package load drives a workload against a store and measures what it sustains: the
// harness behind `duro bench` and the etcd comparison in bench/etcd.
//
// A run is closed-loop (Config.Rate == 0: Callers goroutines each issue the next
// operation as soon as the previous one returns) or open-loop (a fixed total rate: the
// i-th operation is due at start + i/Rate, whichever caller is free takes it).
//
// Invariants:
//   - In open loop, latency is measured from an operation's intended start, not from when
//     a caller got round to it. When the store stalls, every operation that should have
//     started during the stall is charged the wait (no coordinated omission, as in wrk2).
//   - Only operations intended to start inside the measured window
//     [start+Warmup, start+Warmup+Duration) are recorded; operations in flight when the
//     window closes are waited for and recorded.
//   - Failed operations are counted, never put in the latency histogram.
//
// The package imports nothing but the standard library, HdrHistogram and
// prometheus/procfs (CPU time from /proc), so the etcd module can build it without
// compiling any of duro, and both sides of a comparison print and encode their results
// the same way. The duro workloads live in load/workloads.
package load
