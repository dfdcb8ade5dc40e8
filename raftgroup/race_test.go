//go:build race

package raftgroup

// raceEnabled scales the heaviest tests down: the race detector slows bbolt ~50x.
const raceEnabled = true
