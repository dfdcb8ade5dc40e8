// Package failover measures how long callers of a replicated store wait when the process
// that leads it dies, stops, or is cut off: the failover window as the callers see it.
// It is the harness behind `duro bench failover` and `etcdbench failover`, so both sides
// of that comparison strike, measure and report alike.
//
// A run is a closed-loop bench/load run (Callers goroutines, each issuing its next call
// as soon as the previous one returns) with one fault in the middle of its measured
// window: at Config.At the Target names the process leading the most raft groups and
// strikes it; at the end of the window the fault is undone (a paused process resumed, a
// cut healed; a killed one stays down). The run then waits for every call in flight.
//
// What a Report holds, and what must hold for it to mean something:
//   - Worst is the longest any call of the measured window took, failed ones included:
//     the window as the unluckiest caller saw it.
//   - SlowSeconds counts the whole intervals of the window in which fewer than SlowBelow
//     calls were answered (succeeded), by the time they returned, not the time they began.
//   - Errors are calls that returned an error to their caller (bench/load's count).
//   - P99 is bench/load's, over the successful calls of the whole window.
//   - The fault is struck once, and always undone before Run returns, even when the run
//     is cancelled.
//
// The package imports nothing but the standard library and bench/load, so the etcd
// module builds it without compiling any of duro.
package failover
