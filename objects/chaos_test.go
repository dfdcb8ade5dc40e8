package objects

import (
	"context"
	"errors"
	"math/rand"
	"sync"
	"testing"
	"time"
)

// TestExactlyOnceUnderChaos: callers with client IDs retry each increment (same Seq) until
// it succeeds, while the group fails pending commands, changes leader, and reports applied
// commands as failed. Every increment must apply exactly once: the successful results are
// exactly 1..N and the final count is N.
func TestExactlyOnceUnderChaos(t *testing.T) {
	f := newFixture(t, Options{})
	f.initWrite.Store(true) // Init's own commands join the chaos
	r := rand.New(rand.NewSource(3))
	var chaosMu sync.Mutex
	applies := 0
	f.g.applyDelay = func() {
		chaosMu.Lock()
		defer chaosMu.Unlock()
		applies++
		if applies%5 != 0 {
			return
		}
		switch r.Intn(3) {
		case 0:
			f.g.failPending(errBoom)
		case 1:
			f.g.depose()
			f.g.elect()
		case 2:
			f.g.mu.Lock()
			f.g.failAfterApply = true // deposes after the next apply; reelect makes this node win again
			f.g.reelect = true
			f.g.mu.Unlock()
		}
	}

	const callers, each = 16, 40
	results := make(chan int, callers*each)
	var wg sync.WaitGroup
	for c := 0; c < callers; c++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			req := f.req("chaos", "Add")
			req.Client[0], req.Client[1] = byte(c), 0xcc
			for seq := uint64(1); seq <= each; seq++ {
				req.Seq, req.Ack = seq, seq
				deadline := time.Now().Add(20 * time.Second)
				for {
					v, err := callReq[int](context.Background(), f.rt, req, 1)
					if err == nil {
						results <- v
						break
					}
					var nl *notLeaderError
					if !errors.Is(err, ErrInstanceReset) && !errors.Is(err, errBoom) && !errors.Is(err, errTermOver) && !errors.As(err, &nl) {
						t.Errorf("non-retryable error: %v", err)
						return
					}
					if time.Now().After(deadline) {
						t.Errorf("seq %d never succeeded: %v", seq, err)
						return
					}
				}
			}
		}()
	}
	wg.Wait()
	close(results)
	f.g.applyDelay = nil
	f.checkNoOverlap()

	seen := make([]bool, callers*each+1)
	n := 0
	for v := range results {
		if v < 1 || v > callers*each || seen[v] {
			t.Fatalf("result %d repeated or out of range: an increment applied twice or was lost", v)
		}
		seen[v] = true
		n++
	}
	if n != callers*each {
		t.Fatalf("%d successes, want %d", n, callers*each)
	}
	if v, err := f.get("chaos"); err != nil || v != callers*each {
		t.Fatalf("final count = %d, %v; want %d", v, err, callers*each)
	}
	s := f.rt.Stats()
	t.Logf("resets %d, inits %d", s.Resets, f.inits.Load())
	if s.Inconsistent != 0 {
		t.Fatalf("Stats.Inconsistent = %d", s.Inconsistent)
	}
	if s.Resets == 0 {
		t.Fatal("no resets happened: the chaos did not bite")
	}
}
