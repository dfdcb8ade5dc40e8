package raftgroup

import (
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/duro-db/duro/fsm"
	"github.com/duro-db/duro/internal/testutil"
)

// Commands submitted together share log entries, and each is still applied and answered
// on its own: every object's pipelined chain applies in submission order (a command out
// of order would be refused for its version), a command refused in the middle of a batch
// leaves the others applied, and the followers hold exactly what the leader holds.
func TestSubmitBatchesAndAnswersEachCommand(t *testing.T) {
	c := newCluster(t, 3, withGroups(1))
	c.waitAllLeaders()
	const gid, objects, chain = 1, 32, 40
	g := c.nodes[c.leader(gid)].Group(gid)
	term, ok := g.LeaderTerm()
	if !ok {
		t.Fatal("leader does not serve")
	}
	ids := make([][]byte, objects)
	for i := range ids {
		ids[i] = randomID()
	}
	type answer struct {
		res *fsm.Result
		err error
	}
	answers := make([][]answer, objects)
	var wg sync.WaitGroup
	for o := range objects {
		wg.Add(1)
		go func() {
			defer wg.Done()
			waits := make([]*Pending, chain)
			for v := range chain {
				cmd := put(ids[o], "k", fmt.Sprint(v+1))
				cmd.Version = uint64(v + 1)
				if o == 0 && v == chain-1 {
					cmd.Version = 1000 // refused for its version, alone
				}
				waits[v] = g.Submit(term, cmd) // pipelined: no wait in between
			}
			for _, w := range waits {
				res, err := w.Wait()
				answers[o] = append(answers[o], answer{res, err})
			}
		}()
	}
	wg.Wait()

	shared := map[uint64]int{} // log index → commands answered from it
	for o, as := range answers {
		for v, a := range as {
			if a.err != nil {
				t.Fatalf("object %d command %d: %v", o, v, a.err)
			}
			shared[a.res.Index]++
			if o == 0 && v == chain-1 {
				if !errors.Is(a.res.Err, fsm.ErrVersionConflict) {
					t.Errorf("the out-of-chain command: %+v, want a version conflict", a.res)
				}
				continue
			}
			if a.res.Err != nil || a.res.Version != uint64(v+1) {
				t.Errorf("object %d command %d: %+v, want version %d", o, v, a.res, v+1)
			}
		}
	}
	if len(shared) >= objects*chain {
		t.Errorf("%d commands took %d log entries: nothing was batched", objects*chain, len(shared))
	}
	t.Logf("%d commands in %d entries", objects*chain, len(shared))

	testutil.WaitFor(t, 10*time.Second, "followers to apply everything", func() bool {
		for _, n := range c.nodes {
			if !n.Group(gid).CaughtUp(g.Raft().CommitIndex()) {
				return false
			}
		}
		return true
	})
	for _, n := range c.nodes {
		for o, id := range ids {
			want := fmt.Sprint(chain)
			if o == 0 {
				want = fmt.Sprint(chain - 1)
			}
			if v, _ := get(t, n.Group(gid), id, "k"); v != want {
				t.Errorf("%s: object %d holds %q, want %q", n.cfg.ID, o, v, want)
			}
		}
	}
}

// A command submitted in a term the replica no longer serves is refused before it is
// appended.
func TestSubmitRefusesAStaleTerm(t *testing.T) {
	c := newCluster(t, 3, withGroups(1))
	c.waitAllLeaders()
	g := c.nodes[c.leader(1)].Group(1)
	term, _ := g.LeaderTerm()
	if _, err := g.Submit(term+1, put(randomID(), "k", "v")).Wait(); !errors.Is(err, ErrNotLeader) {
		t.Fatalf("submit in a term not served: %v, want ErrNotLeader", err)
	}
	if res, err := g.Submit(term, put(randomID(), "k", "v")).Wait(); err != nil || res.Err != nil {
		t.Fatalf("submit in the served term: %v %+v", err, res)
	}
}

// cuttableLeader is one group on 3 nodes whose links run through proxies, with raft timing
// that keeps its leader through the tests' cuts (a lease far longer than they last) and
// retries a failed append only when a new entry comes (CommitTimeout a minute).
type cuttableLeader struct {
	c       *testCluster
	proxies map[[2]int]*linkProxy
	l       int // the leader's node
	g       *Group
	term    uint64
}

func newCuttableLeader(t *testing.T) *cuttableLeader {
	tm := fastTiming()
	tm.CommitTimeout = time.Minute
	tm.HeartbeatTimeout, tm.ElectionTimeout, tm.LeaderLeaseTimeout = 2*time.Second, 2*time.Second, time.Second
	c, proxies, _ := newProxiedCluster(t, 3, 1, withTiming(tm))
	c.waitAllLeaders()
	l := c.leader(1)
	g := c.nodes[l].Group(1)
	term, _ := g.LeaderTerm()
	return &cuttableLeader{c: c, proxies: proxies, l: l, g: g, term: term}
}

// cut drops every link from the leader to its followers.
func (s *cuttableLeader) cut() {
	for link, p := range s.proxies {
		if link[0] == s.l {
			p.cut()
		}
	}
}

// Raft retries a failed append only when a new entry arrives or after CommitTimeout. A
// group that held every later command until its one entry in flight was answered would
// leave that entry stuck for the whole timer after a connection reset; the hold lets the
// next command go out, and its append carries the stuck entry too.
func TestSubmitKeepsProposingWhileAnEntryIsStuck(t *testing.T) {
	s := newCuttableLeader(t)
	g, term, proxies := s.g, s.term, s.proxies
	if _, err := g.Submit(term, put(randomID(), "k", "v")).Wait(); err != nil {
		t.Fatal(err)
	}
	s.cut()
	stuck := g.Submit(term, put(randomID(), "k", "a"))
	// Give raft time to try (and fail) the append; if it has not tried yet, the entry just
	// commits after the heal and the test proves nothing, but does not fail.
	time.Sleep(100 * time.Millisecond)
	for _, p := range proxies {
		p.heal()
	}
	next := g.Submit(term, put(randomID(), "k", "b"))
	done := make(chan error, 2)
	for _, w := range []*Pending{stuck, next} {
		go func() {
			_, err := w.Wait()
			done <- err
		}()
	}
	timeout := time.After(5 * time.Second)
	for range 2 {
		select {
		case err := <-done:
			if err != nil {
				t.Fatalf("a command failed: %v", err)
			}
		case <-timeout:
			t.Fatal("commands still unanswered 5s after the links healed: the group stopped proposing behind a stuck entry")
		}
	}
}

// Raft never answers a future still queued when it shuts down, so a command the leader
// could not commit must still be settled when its node closes: the object runtime waits on
// Done with no timeout of its own. Commands queued behind the stuck entry were never handed
// to raft (ErrClosed); the entry's own may have committed (ErrUnknownOutcome).
func TestShutdownSettlesEveryPendingCommand(t *testing.T) {
	s := newCuttableLeader(t)
	g, term := s.g, s.term
	s.cut()
	var pending []*Pending
	for i := range 50 {
		pending = append(pending, g.Submit(term, put(randomID(), "k", fmt.Sprint(i))))
	}
	// Raft usually answers what it holds at shutdown (ErrLeadershipLost for its inflight
	// entries), but not an entry it committed and had yet to apply; stand one in.
	lost := &Pending{term: term, done: make(chan struct{})}
	g.prop.mu.Lock()
	g.prop.out[lost] = []*Pending{lost}
	g.prop.mu.Unlock()
	s.c.stop(s.l)
	select {
	case <-lost.Done():
		if _, err := lost.Wait(); !errors.Is(err, ErrUnknownOutcome) {
			t.Fatalf("an entry raft never answered: %v, want ErrUnknownOutcome", err)
		}
	default:
		t.Fatal("an entry raft never answered is still pending after its node closed")
	}
	timeout := time.After(5 * time.Second)
	for i, x := range pending {
		select {
		case <-x.Done():
		case <-timeout:
			t.Fatalf("command %d still pending 5s after its node closed", i)
		}
		_, err := x.Wait()
		if !errors.Is(err, ErrClosed) && !errors.Is(err, ErrUnknownOutcome) && !errors.Is(err, ErrNotLeader) {
			t.Fatalf("command %d: %v, want ErrClosed, ErrUnknownOutcome or ErrNotLeader", i, err)
		}
	}
}

// With one entry slot per node, groups that share a leader take turns: every command of
// every group still commits, in order, and once the load is over each node has its slot
// back and nobody waiting (a slot lost on any path would stall the node's groups for good).
func TestEntrySlotsAreSharedAndReturned(t *testing.T) {
	old := nodeEntrySlots
	nodeEntrySlots = 1
	t.Cleanup(func() { nodeEntrySlots = old })
	const groups, callers, chain = 6, 4, 25
	c := newCluster(t, 3, withGroups(groups))
	c.waitAllLeaders()
	var wg sync.WaitGroup
	errs := make(chan error, groups*callers)
	entries := make([]map[uint64]bool, groups+1)
	var mu sync.Mutex
	for gid := uint64(1); gid <= groups; gid++ {
		entries[gid] = map[uint64]bool{}
		g := c.nodes[c.leader(gid)].Group(gid)
		term, _ := g.LeaderTerm()
		for range callers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				id := randomID()
				waits := make([]*Pending, chain)
				for v := range chain {
					cmd := put(id, "k", fmt.Sprint(v+1))
					cmd.Version = uint64(v + 1)
					waits[v] = g.Submit(term, cmd)
				}
				for v, w := range waits {
					select {
					case <-w.Done():
					case <-time.After(10 * time.Second):
						errs <- fmt.Errorf("group %d: command %d unanswered after 10s", gid, v)
						return
					}
					res, err := w.Wait()
					if err == nil && (res.Err != nil || res.Version != uint64(v+1)) {
						err = fmt.Errorf("command %d: %+v", v, res)
					}
					if err != nil {
						errs <- fmt.Errorf("group %d: %w", gid, err)
						return
					}
					mu.Lock()
					entries[gid][res.Index] = true
					mu.Unlock()
				}
			}()
		}
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	n := 0
	for _, e := range entries {
		n += len(e)
	}
	t.Logf("%d commands in %d entries", groups*callers*chain, n)
	testutil.WaitFor(t, 5*time.Second, "every node's slot to be free", func() bool {
		for _, node := range c.nodes {
			node.slots.mu.Lock()
			free, waiting := node.slots.free, len(node.slots.waiting)
			node.slots.mu.Unlock()
			if free != 1 || waiting != 0 {
				return false
			}
		}
		return true
	})
}
