// Package logstorevsboltdb benchmarks duro's raft log store (internal/logstore: one WAL
// for all of a node's groups, group commit) against hashicorp/raft-boltdb/v2 (a bbolt
// file per group, the stock setup for hashicorp/raft), both sides in one run:
//
//	cd bench/logstore-vs-boltdb
//	go test -run '^$' -bench StoreLogs -benchtime=2s -count=3
//
// It is a module of its own so that raft-boltdb, and the archived boltdb/bolt it pulls
// in, never enter duro's go.mod; it builds duro's log store through a replace of the
// parent module. It has no code outside its benchmark.
package logstorevsboltdb
