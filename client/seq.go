package client

import "sync"

// seqTracker numbers a Client's calls and knows the lowest number still waiting for an
// answer, which every request carries as its Ack: the cluster may forget the stored
// results of every lower number.
//
// Numbers are handed out in increasing order, so the outstanding ones, kept in the order
// they were handed out, are already sorted: the lowest is the first not yet finished.
// Finished numbers are only marked, and trimmed from the front; begin, end and ack are
// O(1) amortised, with no heap.
type seqTracker struct {
	mu       sync.Mutex
	next     uint64   // last number handed out
	live     []uint64 // numbers handed out and not yet trimmed, ascending
	head     int      // live[:head] are trimmed
	finished map[uint64]struct{}
}

// begin hands out the next number and marks it outstanding.
func (t *seqTracker) begin() uint64 {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.next++
	t.live = append(t.live, t.next)
	return t.next
}

// end marks seq answered (or abandoned).
func (t *seqTracker) end(seq uint64) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.finished == nil {
		t.finished = make(map[uint64]struct{})
	}
	t.finished[seq] = struct{}{}
	for t.head < len(t.live) {
		s := t.live[t.head]
		if _, ok := t.finished[s]; !ok {
			break
		}
		delete(t.finished, s)
		t.head++
	}
	// Compact once the trimmed prefix dominates, so memory follows the outstanding count.
	if t.head > 64 && t.head > len(t.live)/2 {
		n := copy(t.live, t.live[t.head:])
		t.live = t.live[:n]
		t.head = 0
	}
}

// ack returns the lowest outstanding number, or the next to be handed out if none is.
func (t *seqTracker) ack() uint64 {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.head < len(t.live) {
		return t.live[t.head]
	}
	return t.next + 1
}
