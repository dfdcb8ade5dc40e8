package fsm

import (
	"bytes"
	"errors"
	"log/slog"
	"path/filepath"
	"testing"

	"github.com/hashicorp/raft"
	bolt "go.etcd.io/bbolt"
)

// openTest opens a store in a fresh directory, fsync off, closed at cleanup.
func openTest(t testing.TB, opts Options) *Store {
	t.Helper()
	opts.NoSync = true
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	s, err := Open(filepath.Join(t.TempDir(), "state.db"), opts)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

// testID returns a deterministic object ID.
func testID(n byte) []byte {
	id := make([]byte, IDLen)
	id[0] = 0xd0
	id[IDLen-1] = n
	return id
}

func testClient(n byte) []byte {
	c := make([]byte, ClientIDLen)
	c[0] = 0xc1
	c[ClientIDLen-1] = n
	return c
}

func put(k, v string) Op   { return Op{Kind: OpPut, Key: []byte(k), Value: []byte(v)} }
func del(k string) Op      { return Op{Kind: OpDelete, Key: []byte(k)} }
func setAlarm(at int64) Op { return Op{Kind: OpSetAlarm, Alarm: at} }
func deleteAll() Op        { return Op{Kind: OpDeleteAll} }
func deleteAlarm() Op      { return Op{Kind: OpDeleteAlarm} }
func cmd(obj []byte, ops ...Op) *Command {
	return &Command{Object: obj, Ops: ops, Time: 1}
}

// mustEncode encodes c, failing the test if it is invalid.
func mustEncode(t testing.TB, c *Command) []byte {
	t.Helper()
	b, err := EncodeCommand(c)
	if err != nil {
		t.Fatalf("EncodeCommand: %v", err)
	}
	return b
}

// logOf builds raft log entries for data, numbered from first.
func logOf(first uint64, data ...[]byte) []*raft.Log {
	logs := make([]*raft.Log, len(data))
	for i, d := range data {
		logs[i] = &raft.Log{Index: first + uint64(i), Term: 1, Type: raft.LogCommand, Data: d}
	}
	return logs
}

// applyCmds applies cmds as one batch after the store's applied index and returns their
// results.
func applyCmds(t testing.TB, s *Store, cmds ...*Command) []*Result {
	t.Helper()
	data := make([][]byte, len(cmds))
	for i, c := range cmds {
		data[i] = mustEncode(t, c)
	}
	return applyData(t, s, data...)
}

func applyData(t testing.TB, s *Store, data ...[]byte) []*Result {
	t.Helper()
	resps := s.ApplyBatch(logOf(s.AppliedIndex()+1, data...))
	out := make([]*Result, len(resps))
	for i, r := range resps {
		res, ok := r.(*Result)
		if !ok {
			t.Fatalf("response %d is %T, want *Result", i, r)
		}
		out[i] = res
	}
	return out
}

// applyOK applies one command and fails the test if it was rejected.
func applyOK(t testing.TB, s *Store, c *Command) *Result {
	t.Helper()
	r := applyCmds(t, s, c)[0]
	if r.Err != nil {
		t.Fatalf("apply: %v", r.Err)
	}
	return r
}

// kv is one key/value pair as List reports it.
type kv struct{ k, v string }

// dump returns every key/value of object, in order.
func dump(t testing.TB, s *Store, object []byte) []kv {
	t.Helper()
	var out []kv
	err := s.View(func(tx *Tx) error {
		return tx.List(object, ListOptions{}, func(k, v []byte) bool {
			out = append(out, kv{string(k), string(v)})
			return true
		})
	})
	if err != nil {
		t.Fatalf("List: %v", err)
	}
	return out
}

func mustHash(t testing.TB, s *Store) ([]byte, uint64) {
	t.Helper()
	d, applied, err := s.Hash()
	if err != nil {
		t.Fatalf("Hash: %v", err)
	}
	return d, applied
}

func equalKVs(a, b []kv) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// bufSink is a raft.SnapshotSink over a buffer.
type bufSink struct {
	bytes.Buffer
	closed, cancelled bool
}

func (s *bufSink) ID() string    { return "test" }
func (s *bufSink) Cancel() error { s.cancelled = true; return nil }
func (s *bufSink) Close() error {
	if s.closed {
		return errors.New("closed twice")
	}
	s.closed = true
	return nil
}

// countKeys counts the keys of b. (bbolt's Bucket.Stats reads only committed pages: in
// the open write transaction that View may read, it misses what is not committed yet.)
func countKeys(b *bolt.Bucket) int {
	n := 0
	c := b.Cursor()
	for k, _ := c.First(); k != nil; k, _ = c.Next() {
		n++
	}
	return n
}

// writeForeignBolt creates a bbolt file that is not a duro fsm file.
func writeForeignBolt(path string) error {
	db, err := bolt.Open(path, 0o600, nil)
	if err != nil {
		return err
	}
	err = db.Update(func(tx *bolt.Tx) error {
		_, err := tx.CreateBucket([]byte("something-else"))
		return err
	})
	if cerr := db.Close(); err == nil {
		err = cerr
	}
	return err
}
