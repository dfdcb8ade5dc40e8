//go:build !race

package raftgroup

const raceEnabled = false
