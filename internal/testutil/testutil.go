// Package testutil holds what duro's tests share. Only test files import it.
//
// Tests wait for a state by polling for it with a deadline, never by sleeping for a
// guessed time: WaitFor and Eventually are that poll, written once.
package testutil

import (
	"testing"
	"time"
)

// Polling starts at minPoll, so that a condition that holds almost at once is seen almost
// at once, and backs off to maxPoll, so that a long wait costs little CPU.
const (
	minPoll = time.Millisecond
	maxPoll = 10 * time.Millisecond
)

// WaitFor polls cond until it holds, and fails tb (Fatalf) if it does not within d; what
// names the condition in the failure ("the leader to step down").
func WaitFor(tb testing.TB, d time.Duration, what string, cond func() bool) {
	tb.Helper()
	deadline := time.Now().Add(d)
	for poll := minPoll; !cond(); poll = min(2*poll, maxPoll) {
		if time.Now().After(deadline) {
			tb.Fatalf("timed out after %v waiting for %s", d, what)
			return
		}
		time.Sleep(poll)
	}
}

// Eventually polls f until it returns nil, and fails tb (Fatalf) with f's last error if it
// does not within d.
func Eventually(tb testing.TB, d time.Duration, f func() error) {
	tb.Helper()
	deadline := time.Now().Add(d)
	for poll := minPoll; ; poll = min(2*poll, maxPoll) {
		err := f()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			tb.Fatalf("not within %v: %v", d, err)
			return
		}
		time.Sleep(poll)
	}
}
