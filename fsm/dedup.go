package fsm

import (
	"bytes"
	"encoding/binary"
	"fmt"
)

// The dedup table makes a retried call return its first result instead of running twice.
// It is pruned in three ways, all decided by the log alone so that every replica (and a
// replay) prunes the same entries at the same index:
//
//   - Ack: a command's Ack raises its client's floor; entries below it are answered and
//     go. A later command whose Seq is below the floor is a late retry and is refused
//     (ErrStaleSequence) rather than applied again.
//   - Per-client bound: beyond Options.DedupPerClient entries, the lowest Seqs go. They
//     do not raise the floor: a Seq below the lowest kept one may still be in flight
//     (calls of one client can commit out of order), and refusing it would lose a call.
//   - Expiry: entries whose log time is older than the log clock minus Options.DedupTTL go.
//     When a client's last entry expires its record (and floor) goes too.
//
// Each applied command may delete at most dedupGCPerCommand entries. Pruning its own client
// comes first; a client left with work is put in the pending bucket, served before expiry.

// clientScan is what one cursor pass over a client's part of bucketDedup found: its
// record, and its lowest-Seq entries, enough of them for a command's whole pruning budget
// (dedupGCPerCommand deletions, and the entry that stops them).
type clientScan struct {
	rec    clientRecord
	lowest [dedupGCPerCommand + 1]scannedEntry // ascending Seq
	n      int                                 // entries in lowest
	all    bool                                // lowest holds every entry of the client
}

type scannedEntry struct {
	seq uint64
	tk  [8]byte // timeKey of the entry's log time
}

// scanClient reads client's record and lowest entries into sc, and looks up (client,
// seq): a duplicate returns its stored result (aliasing the file), found true.
//
// In the common case, a client that acknowledges its calls, the client has a few entries
// and one Seek answers both the lookup and what to prune; with more entries than sc
// holds, the lookup is a Get of its own.
func (a *applier) scanClient(client []byte, seq uint64, sc *clientScan) (result []byte, found bool, err error) {
	*sc = clientScan{}
	cur := a.dedup.cur
	k, v := cur.Seek(client)
	if len(k) == ClientIDLen && bytes.Equal(k, client) {
		if sc.rec, err = decodeClientRecord(v); err != nil {
			return nil, false, err
		}
		k, v = cur.Next()
	}
	for ; ; k, v = cur.Next() {
		if k == nil || !bytes.HasPrefix(k, client) {
			sc.all = true
			return nil, false, nil
		}
		if len(k) != ClientIDLen+8 || len(v) < 8 {
			return nil, false, fmt.Errorf("%w: dedup entry with %d-byte key, %d-byte value", ErrNotFSMFile, len(k), len(v))
		}
		s := binary.BigEndian.Uint64(k[ClientIDLen:])
		if s == seq {
			return v[8:], true, nil
		}
		if sc.n == len(sc.lowest) {
			break
		}
		sc.lowest[sc.n].seq = s
		copy(sc.lowest[sc.n].tk[:], v)
		sc.n++
	}
	if sc.lowest[sc.n-1].seq > seq {
		return nil, false, nil // entries are in Seq order: seq would have come by now
	}
	v = a.dedup.Get(a.makeDedupKey(client, seq))
	if v == nil {
		return nil, false, nil
	}
	if len(v) < 8 {
		return nil, false, errCorrupt("dedup", len(v))
	}
	return v[8:], true, nil
}

// recordDedup stores c's result under (Client, Seq) and prunes the client's entries that
// c's Ack or the per-client bound made obsolete. sc is the client's scanClient, which
// found no entry for c.Seq.
//
// Pruning deletes the lowest Seqs first, c's own entry included (the bound can make it
// the one to go): the entries sc holds are the candidates, c's slotted in among them.
func (a *applier) recordDedup(c *Command, sc *clientScan, budget *int) error {
	if *budget >= len(sc.lowest) {
		panic("fsm: dedup pruning budget exceeds the entries a client scan holds")
	}
	rec := sc.rec
	rec.count++
	raised := c.Ack > rec.floor
	rec.floor = max(rec.floor, c.Ack)
	limit := uint64(a.store.opts.DedupPerClient)
	store, done := true, true
	if raised || rec.count > limit {
		for i := 0; ; {
			var e scannedEntry
			own := false
			switch {
			case store && (i == sc.n || c.Seq < sc.lowest[i].seq):
				e.seq, own = c.Seq, true
			case i < sc.n:
				e = sc.lowest[i]
			}
			if !own && i == sc.n { // no entry left
				break
			}
			if e.seq >= rec.floor && rec.count <= limit {
				break
			}
			if *budget == 0 {
				done = false
				break
			}
			if rec.count == 0 {
				return fmt.Errorf("%w: client has more dedup entries than its count", ErrNotFSMFile)
			}
			if own {
				store = false
			} else {
				if err := a.dedupExpiry.Delete(a.makeExpiryKey(e.tk[:], c.Client, e.seq)); err != nil {
					return err
				}
				if err := a.dedup.Delete(a.makeDedupKey(c.Client, e.seq)); err != nil {
					return err
				}
				i++
			}
			rec.count--
			*budget--
		}
	}
	if store {
		v := a.arena.alloc(8 + len(c.Result))
		timeKey(v, a.clock)
		copy(v[8:], c.Result)
		if err := a.dedup.Put(a.makeDedupKey(c.Client, c.Seq), v); err != nil {
			return err
		}
		if err := a.dedupExpiry.Put(a.makeExpiryKey(v, c.Client, c.Seq), emptyValue); err != nil {
			return err
		}
	}
	if !done {
		if err := a.dedupPending.Put(c.Client, emptyValue); err != nil {
			return err
		}
	}
	if rec == sc.rec && rec.count != 0 {
		return nil // a client at its bound without an Ack: one entry in, one out
	}
	return a.putClient(c.Client, rec)
}

// pruneClient deletes the client's entries below its floor and beyond the per-client
// bound, lowest Seq first, within budget. done reports that nothing is left to prune.
func (a *applier) pruneClient(client []byte, rec *clientRecord, budget *int) (done bool, err error) {
	limit := uint64(a.store.opts.DedupPerClient)
	cur := a.dedup.cur
	for {
		k, v := cur.Seek(a.makeDedupKey(client, 0)) // the lowest entry, past the record
		if k == nil || !bytes.HasPrefix(k, client) {
			return true, nil
		}
		if len(k) != ClientIDLen+8 || len(v) < 8 {
			return false, fmt.Errorf("%w: dedup entry with %d-byte key, %d-byte value", ErrNotFSMFile, len(k), len(v))
		}
		seq := binary.BigEndian.Uint64(k[ClientIDLen:])
		if seq >= rec.floor && rec.count <= limit {
			return true, nil
		}
		if *budget == 0 {
			return false, nil
		}
		if rec.count == 0 {
			return false, fmt.Errorf("%w: client has more dedup entries than its count", ErrNotFSMFile)
		}
		ek := a.makeExpiryKey(v, client, seq)
		if err := a.dedupExpiry.Delete(ek); err != nil {
			return false, err
		}
		if err := a.dedup.Delete(a.makeDedupKey(client, seq)); err != nil {
			return false, err
		}
		rec.count--
		*budget--
	}
}

// putClient writes the client's record, or deletes it once the client has no entries.
func (a *applier) putClient(client []byte, rec clientRecord) error {
	if rec.count == 0 {
		if err := a.dedup.Delete(client); err != nil {
			return err
		}
		return a.dedupPending.Delete(client)
	}
	return a.dedup.Put(client, rec.appendTo(a.arena.alloc(16)[:0]))
}

// collectDedup spends what is left of budget on pending clients, then on expired entries.
func (a *applier) collectDedup(budget *int) error {
	for *budget > 0 {
		k, _ := a.dedupPending.cur.First()
		if k == nil {
			break
		}
		if len(k) != ClientIDLen {
			return fmt.Errorf("%w: dedup-pending key of %d bytes", ErrNotFSMFile, len(k))
		}
		client := a.client[:]
		copy(client, k)
		rec, err := decodeClientRecord(a.dedup.Get(client))
		if err != nil {
			return err
		}
		done, err := a.pruneClient(client, &rec, budget)
		if err != nil {
			return err
		}
		if err := a.putClient(client, rec); err != nil {
			return err
		}
		if !done {
			break
		}
		if err := a.dedupPending.Delete(client); err != nil {
			return err
		}
	}

	cutoff := a.clock - int64(a.store.opts.DedupTTL)
	if cutoff > a.clock { // the clock is within a TTL of MinInt64: nothing is that old
		return nil
	}
	for *budget > 0 {
		k, _ := a.dedupExpiry.cur.First()
		if k == nil {
			return nil
		}
		if len(k) != 8+ClientIDLen+8 {
			return fmt.Errorf("%w: dedup-expiry key of %d bytes", ErrNotFSMFile, len(k))
		}
		if timeFromKey(k) >= cutoff {
			return nil
		}
		client := a.client[:]
		copy(client, k[8:])
		seq := binary.BigEndian.Uint64(k[8+ClientIDLen:])
		if err := a.dedupExpiry.Delete(a.makeExpiryKey(k, client, seq)); err != nil {
			return err
		}
		if err := a.dedup.Delete(a.makeDedupKey(client, seq)); err != nil {
			return err
		}
		rec, err := decodeClientRecord(a.dedup.Get(client))
		if err != nil {
			return err
		}
		if rec.count == 0 {
			return fmt.Errorf("%w: expired dedup entry of a client without entries", ErrNotFSMFile)
		}
		rec.count--
		if err := a.putClient(client, rec); err != nil {
			return err
		}
		*budget--
	}
	return nil
}
