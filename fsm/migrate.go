package fsm

import (
	"fmt"

	bolt "go.etcd.io/bbolt"
)

// Format 1, the layout before the flat one, as far as it differs from format 2:
//
//   - "objects" held one nested bucket per object ID with that object's keys, present only
//     while the object had keys;
//   - "object-meta" mapped object ID → the object's record (as in format 2);
//   - "dedup" held only the entries, and "dedup-clients" mapped client → its record.
//
// A format-1 file is migrated when Open opens it, and a format-1 snapshot when Restore
// checks it (raft's snapshot store may hold one written before the upgrade), in one write
// transaction: a crash leaves the file as it was, to be migrated at the next Open.
var (
	formatV1 = []byte("duro-fsm/1")

	v1BucketObjectMeta   = []byte("object-meta")
	v1BucketDedupClients = []byte("dedup-clients")

	v1Buckets = [][]byte{
		bucketMeta, bucketObjects, v1BucketObjectMeta, bucketAlarms,
		bucketDedup, bucketDedupExpiry, v1BucketDedupClients, bucketDedupPending,
	}

	// bucketMigrating holds format 1's objects bucket while the flat one is built under
	// its name (bbolt cannot rename a bucket).
	bucketMigrating = []byte("migrating")
)

// migrateV1 turns a format-1 layout into format 2 in tx. The whole state is copied in
// one transaction, so it needs memory for the objects' keys and values: a one-time cost.
func migrateV1(tx *bolt.Tx) error {
	// The flat bucket takes the old one's name: the old one moves aside first. (bbolt's
	// MoveBucket moves a bucket as last committed, so only an unchanged one can move.)
	tmp, err := tx.CreateBucket(bucketMigrating)
	if err != nil {
		return err
	}
	if err := tx.MoveBucket(bucketObjects, nil, tmp); err != nil {
		return err
	}
	oldObjects, oldMeta := tmp.Bucket(bucketObjects), tx.Bucket(v1BucketObjectMeta)
	flat, err := tx.CreateBucket(bucketObjects)
	if err != nil {
		return err
	}
	// Each object's record, then its keys: the flat order, so the bucket fills in order.
	var key []byte
	c := oldMeta.Cursor()
	for id, v := c.First(); id != nil; id, v = c.Next() {
		if len(id) != IDLen {
			return errCorruptKey("object-meta", len(id))
		}
		if _, err := decodeObjectMeta(v); err != nil {
			return err
		}
		if err := flat.Put(id, v); err != nil {
			return err
		}
		ob := oldObjects.Bucket(id)
		if ob == nil {
			continue
		}
		kc := ob.Cursor()
		for k, v := kc.First(); k != nil; k, v = kc.Next() {
			if v == nil || len(k) == 0 {
				return fmt.Errorf("%w: object %x holds a bucket or an empty key", ErrNotFSMFile, id)
			}
			key = appendObjectKey(key[:0], id, k)
			if err := flat.Put(key, v); err != nil {
				return err
			}
		}
	}
	// Every object with keys has a record (format 1's shape invariant): check, since the
	// keys of one without would be lost.
	oc := oldObjects.Cursor()
	for id, v := oc.First(); id != nil; id, v = oc.Next() {
		if v != nil || oldMeta.Get(id) == nil {
			return fmt.Errorf("%w: objects entry %x is not the bucket of a known object", ErrNotFSMFile, id)
		}
	}
	for _, name := range [][]byte{bucketMigrating, v1BucketObjectMeta} {
		if err := tx.DeleteBucket(name); err != nil {
			return err
		}
	}

	dedup := tx.Bucket(bucketDedup)
	cc := tx.Bucket(v1BucketDedupClients).Cursor()
	for client, v := cc.First(); client != nil; client, v = cc.Next() {
		if len(client) != ClientIDLen {
			return errCorruptKey("dedup-clients", len(client))
		}
		if _, err := decodeClientRecord(v); err != nil {
			return err
		}
		if err := dedup.Put(client, v); err != nil {
			return err
		}
	}
	if err := tx.DeleteBucket(v1BucketDedupClients); err != nil {
		return err
	}
	return tx.Bucket(bucketMeta).Put(keyFormat, formatV2)
}
