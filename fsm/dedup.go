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

// recordDedup stores c's result under (Client, Seq) and prunes the client's entries that
// c's Ack or the per-client bound made obsolete.
func (a *applier) recordDedup(c *Command, rec clientRecord, budget *int) error {
	v := a.arena.alloc(8 + len(c.Result))
	timeKey(v, a.clock)
	copy(v[8:], c.Result)
	if err := a.dedup.Put(a.makeDedupKey(c.Client, c.Seq), v); err != nil {
		return err
	}
	if err := a.dedupExpiry.Put(a.makeExpiryKey(v, c.Client, c.Seq), emptyValue); err != nil {
		return err
	}
	rec.count++
	raised := c.Ack > rec.floor
	rec.floor = max(rec.floor, c.Ack)
	if raised || rec.count > uint64(a.store.opts.DedupPerClient) {
		done, err := a.pruneClient(c.Client, &rec, budget)
		if err != nil {
			return err
		}
		if !done {
			if err := a.dedupPending.Put(c.Client, emptyValue); err != nil {
				return err
			}
		}
	}
	return a.putClient(c.Client, rec)
}

// pruneClient deletes the client's entries below its floor and beyond the per-client
// bound, lowest Seq first, within budget. done reports that nothing is left to prune.
func (a *applier) pruneClient(client []byte, rec *clientRecord, budget *int) (done bool, err error) {
	limit := uint64(a.store.opts.DedupPerClient)
	cur := a.dedup.Cursor()
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
		k, _ := a.dedupPending.Cursor().First()
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
		k, _ := a.dedupExpiry.Cursor().First()
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
