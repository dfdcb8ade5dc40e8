package raftgroup

import (
	"errors"
	"fmt"
)

var (
	// ErrNotLeader is matched (errors.Is) by every *NotLeaderError.
	ErrNotLeader = errors.New("not the leader")
	// ErrUnknownOutcome means a command may or may not have committed: leadership was lost
	// or the wait was abandoned after the command was handed to Raft. Retrying with the same
	// request ID is safe: the state machine deduplicates it.
	ErrUnknownOutcome = errors.New("outcome unknown")
	// ErrNoGroup means this node hosts no replica of the group.
	ErrNoGroup = errors.New("group not hosted on this node")
	// ErrClosed is returned after Close.
	ErrClosed = errors.New("node closed")
	// ErrDataDir is wrapped when the data dir belongs to another node or cluster.
	ErrDataDir = errors.New("data dir belongs elsewhere")
)

// NotLeaderError says which node leads the group, when this node knows. The command was
// definitely not appended to the log: retrying elsewhere is safe.
type NotLeaderError struct {
	Group      uint64
	LeaderID   string // "" when unknown
	LeaderAddr string // "" when unknown
}

func (e *NotLeaderError) Error() string {
	if e.LeaderID == "" {
		return fmt.Sprintf("group %d: not the leader; leader unknown", e.Group)
	}
	return fmt.Sprintf("group %d: not the leader; leader is %s at %s", e.Group, e.LeaderID, e.LeaderAddr)
}

// Is makes errors.Is(err, ErrNotLeader) true.
func (e *NotLeaderError) Is(target error) bool { return target == ErrNotLeader }
