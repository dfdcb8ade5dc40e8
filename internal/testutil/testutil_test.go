package testutil

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"
)

// fatalTB records a Fatalf instead of ending the test.
type fatalTB struct {
	testing.TB
	msg string
}

func (f *fatalTB) Helper() {}

func (f *fatalTB) Fatalf(format string, args ...any) { f.msg = fmt.Sprintf(format, args...) }

func TestWaitForReturnsOnceTheConditionHolds(t *testing.T) {
	n := 0
	tb := &fatalTB{TB: t}
	WaitFor(tb, 5*time.Second, "three polls", func() bool { n++; return n == 3 })
	if tb.msg != "" || n != 3 {
		t.Fatalf("polled %d times, failure %q", n, tb.msg)
	}
}

func TestWaitForFailsAtTheDeadline(t *testing.T) {
	tb := &fatalTB{TB: t}
	start := time.Now()
	WaitFor(tb, 30*time.Millisecond, "nothing", func() bool { return false })
	if !strings.Contains(tb.msg, "waiting for nothing") {
		t.Fatalf("failure %q does not name the condition", tb.msg)
	}
	if el := time.Since(start); el < 30*time.Millisecond {
		t.Fatalf("gave up after %v, before the deadline", el)
	}
}

func TestEventually(t *testing.T) {
	n := 0
	tb := &fatalTB{TB: t}
	Eventually(tb, 5*time.Second, func() error {
		if n++; n < 3 {
			return errors.New("not yet")
		}
		return nil
	})
	if tb.msg != "" || n != 3 {
		t.Fatalf("polled %d times, failure %q", n, tb.msg)
	}
	Eventually(tb, 20*time.Millisecond, func() error { return errors.New("still broken") })
	if !strings.Contains(tb.msg, "still broken") {
		t.Fatalf("failure %q does not carry the last error", tb.msg)
	}
}
