package fsm

import (
	"bytes"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	bolt "go.etcd.io/bbolt"
)

// openFormat1 copies testdata/format1.db (written by the format-1 code) into a fresh
// directory and returns its path and the digest the format-1 code computed for it.
func openFormat1(t *testing.T) (path string, digest []byte) {
	t.Helper()
	file, err := os.ReadFile(filepath.Join("testdata", "format1.db"))
	if err != nil {
		t.Fatal(err)
	}
	h, err := os.ReadFile(filepath.Join("testdata", "format1.hash"))
	if err != nil {
		t.Fatal(err)
	}
	if digest, err = hex.DecodeString(strings.TrimSpace(string(h))); err != nil {
		t.Fatal(err)
	}
	path = filepath.Join(t.TempDir(), "state.db")
	if err := os.WriteFile(path, file, 0o600); err != nil {
		t.Fatal(err)
	}
	return path, digest
}

// format1Fresh applies format1Log to a new store, as the fixture was written.
func format1Fresh(t *testing.T) *Store {
	t.Helper()
	s := openTest(t, format1Options)
	log := format1Log(t)
	for i := 0; i < len(log); i += format1Batch {
		s.ApplyBatch(logOf(uint64(i+1), log[i:min(i+format1Batch, len(log))]...))
	}
	return s
}

// rawDump lists every bucket, key and value of the store's file, in order.
func rawDump(t *testing.T, s *Store) []string {
	t.Helper()
	var out []string
	if err := s.View(func(tx *Tx) error {
		return tx.tx.ForEach(func(name []byte, b *bolt.Bucket) error {
			return b.ForEach(func(k, v []byte) error {
				if v == nil {
					return fmt.Errorf("bucket %q holds a nested bucket %x", name, k)
				}
				out = append(out, fmt.Sprintf("%s %x = %x", name, k, v))
				return nil
			})
		})
	}); err != nil {
		t.Fatal(err)
	}
	return out
}

// compareStores checks that got holds exactly want's state: every bucket, key and value,
// and the same answers from the read API.
func compareStores(t *testing.T, got, want *Store) {
	t.Helper()
	g, w := rawDump(t, got), rawDump(t, want)
	if len(g) != len(w) {
		t.Errorf("%d records, want %d", len(g), len(w))
	}
	for i := range min(len(g), len(w)) {
		if g[i] != w[i] {
			t.Fatalf("record %d: %s, want %s", i, g[i], w[i])
		}
	}
	if got.AppliedIndex() != want.AppliedIndex() {
		t.Errorf("applied %d, want %d", got.AppliedIndex(), want.AppliedIndex())
	}
	for n := range 110 {
		id := testID(byte(n))
		if a, b := readObjectOf(t, got, id), readObjectOf(t, want, id); a != b {
			t.Errorf("object %d: %s, want %s", n, a, b)
		}
	}
	for client := range 21 {
		for seq := range uint64(20) {
			a, okA := dedupLookup(t, got, testClient(byte(client)), seq)
			b, okB := dedupLookup(t, want, testClient(byte(client)), seq)
			if a != b || okA != okB {
				t.Errorf("dedup (%d, %d): %q %v, want %q %v", client, seq, a, okA, b, okB)
			}
		}
	}
}

// readObjectOf describes everything View says about one object.
func readObjectOf(t *testing.T, s *Store, id []byte) string {
	t.Helper()
	var b strings.Builder
	if err := s.View(func(tx *Tx) error {
		at, ok := tx.Alarm(id)
		fmt.Fprintf(&b, "v%d alarm %d %v:", tx.Version(id), at, ok)
		return tx.List(id, ListOptions{}, func(k, v []byte) bool {
			fmt.Fprintf(&b, " %q=%q", k, v)
			return true
		})
	}); err != nil {
		t.Fatal(err)
	}
	return b.String()
}

func TestOpenMigratesFormat1(t *testing.T) {
	path, digest := openFormat1(t)
	opts := format1Options
	opts.NoSync, opts.Logger = true, slog.New(slog.DiscardHandler)
	s, err := Open(path, opts)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if d, applied := mustHash(t, s); !bytes.Equal(d, digest) || applied != uint64(len(format1Log(t))) {
		t.Fatalf("migrated file hashes to %x at %d, the format-1 code had %x", d, applied, digest)
	}
	fresh := format1Fresh(t)
	compareStores(t, s, fresh)
	if err := s.View(func(tx *Tx) error {
		if f := tx.meta.Get(keyFormat); !bytes.Equal(f, formatV2) {
			return fmt.Errorf("format %q after migration", f)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}

	// The migrated store goes on as a fresh one does: the pending client is served, later
	// entries prune alike.
	more := workload(t, 12, 100)
	for _, st := range []*Store{s, fresh} {
		for i := 0; i < len(more); i += 5 {
			st.ApplyBatch(logOf(st.AppliedIndex()+1, more[i:min(i+5, len(more))]...))
		}
	}
	compareStores(t, s, fresh)

	// And it reopens as format 2.
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	before := rawDump(t, fresh)
	s2, err := Open(path, opts)
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	if after := rawDump(t, s2); strings.Join(after, "\n") != strings.Join(before, "\n") {
		t.Fatal("reopened migrated file differs")
	}
}

func TestRestoreMigratesFormat1Snapshot(t *testing.T) {
	path, digest := openFormat1(t)
	file, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	s := openTest(t, format1Options)
	applyOK(t, s, cmd(testID(1), put("overwritten", "by the restore")))
	if err := restore(s, withTrailer(file)); err != nil {
		t.Fatal(err)
	}
	if d, _ := mustHash(t, s); !bytes.Equal(d, digest) {
		t.Fatalf("restored format-1 snapshot hashes to %x, the format-1 code had %x", d, digest)
	}
	compareStores(t, s, format1Fresh(t))
}

func TestOpenRefusesUnknownFormats(t *testing.T) {
	tests := []struct {
		name   string
		damage func(tx *bolt.Tx) error
	}{
		{"format 3", func(tx *bolt.Tx) error { return tx.Bucket(bucketMeta).Put(keyFormat, []byte("duro-fsm/3")) }},
		{"no marker", func(tx *bolt.Tx) error { return tx.Bucket(bucketMeta).Delete(keyFormat) }},
		{"format 1 without dedup-clients", func(tx *bolt.Tx) error { return tx.DeleteBucket(v1BucketDedupClients) }},
		{"format 1 object without a record", func(tx *bolt.Tx) error {
			return tx.Bucket(v1BucketObjectMeta).Delete(testID(101))
		}},
		{"format 1 short client record", func(tx *bolt.Tx) error {
			return tx.Bucket(v1BucketDedupClients).Put(testClient(9), []byte{1})
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path, _ := openFormat1(t)
			db, err := bolt.Open(path, 0o600, nil)
			if err != nil {
				t.Fatal(err)
			}
			err = db.Update(tt.damage)
			if cerr := db.Close(); err == nil {
				err = cerr
			}
			if err != nil {
				t.Fatal(err)
			}
			before, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := Open(path, Options{NoSync: true}); !errors.Is(err, ErrNotFSMFile) {
				t.Fatalf("Open: %v, want ErrNotFSMFile", err)
			}
			// A failed migration leaves the file as it was.
			if after, _ := os.ReadFile(path); !bytes.Equal(after, before) {
				t.Fatal("a refused file was changed")
			}
			s := openTest(t, Options{})
			if err := restore(s, withTrailer(before)); !errors.Is(err, ErrNotFSMFile) {
				t.Fatalf("Restore: %v, want ErrNotFSMFile", err)
			}
		})
	}
}

// FuzzRecords feeds arbitrary keys and values to the decoders of the file's records:
// a malformed one is an error wrapping ErrNotFSMFile, never a panic, and what decodes
// encodes back to the same bytes.
func FuzzRecords(f *testing.F) {
	f.Add(append(testID(1), "key"...), make([]byte, 16))
	f.Add(testID(1), make([]byte, 8))
	f.Add(append(testClient(1), 0, 0, 0, 0, 0, 0, 0, 9), []byte{})
	f.Add([]byte("short"), []byte{1, 2, 3})
	f.Fuzz(func(t *testing.T, k, v []byte) {
		check := func(what string, err error) bool {
			if err != nil && !errors.Is(err, ErrNotFSMFile) {
				t.Fatalf("%s: %v, want ErrNotFSMFile", what, err)
			}
			return err == nil
		}
		if id, key, err := splitObjectKey(k); check("objects key", err) {
			if !bytes.Equal(appendObjectKey(nil, id, key), k) || len(id) != IDLen {
				t.Fatalf("objects key %x splits into %x, %x", k, id, key)
			}
		}
		if client, seq, record, err := splitDedupKey(k); check("dedup key", err) {
			want := client
			if !record {
				want = fmt.Appendf(nil, "%s%s", client, []byte{byte(seq >> 56), byte(seq >> 48),
					byte(seq >> 40), byte(seq >> 32), byte(seq >> 24), byte(seq >> 16), byte(seq >> 8), byte(seq)})
			}
			if !bytes.Equal(want, k) {
				t.Fatalf("dedup key %x decodes to %x, %d, %v", k, client, seq, record)
			}
		}
		if m, err := decodeObjectMeta(v); check("object record", err) && len(v) > 0 {
			if !bytes.Equal(m.appendTo(nil), v) {
				t.Fatalf("object record %x re-encodes as %x", v, m.appendTo(nil))
			}
		}
		if r, err := decodeClientRecord(v); check("client record", err) && len(v) > 0 {
			if !bytes.Equal(r.appendTo(nil), v) {
				t.Fatalf("client record %x re-encodes as %x", v, r.appendTo(nil))
			}
		}
	})
}

// TestDigestsMatchFormat1Code applies long workloads under several dedup settings and
// compares the state's digest with what the format-1 code computed for the same log
// (testdata/gen_format1_test.go.txt, TestGenGolden): the layout and the dedup bookkeeping
// changed, the state they describe must not have.
func TestDigestsMatchFormat1Code(t *testing.T) {
	for _, g := range []struct {
		seed   uint64
		n      int
		opts   Options
		digest string
	}{
		{1, 2000, Options{DedupPerClient: 3, DedupTTL: 5000000000}, "ab289c9f5d68910e53460d278f4519cdbcc88c74a7ddabd2e5a02a47d9330097"},
		{2, 2000, Options{DedupPerClient: 8, DedupTTL: 30000000000}, "34d75efa7657350af8af24a9387b7145571b2e0c162bdb23323a5bc1b2eb1d51"},
		{3, 2000, Options{DedupPerClient: 1, DedupTTL: 3600000000000}, "36894af68752c5eaefce4366c878d1c4825870bfca65f7654ea06a52458099c4"},
		{4, 2000, Options{DedupPerClient: 100, DedupTTL: 2000000000}, "e572117f42c54fa6eeff9920a6162fc526715fb1b48de9284b206f182dff48b2"},
	} {
		s := openTest(t, g.opts)
		data := workload(t, g.seed, g.n)
		for i := 0; i < len(data); i += 5 {
			s.ApplyBatch(logOf(uint64(i+1), data[i:min(i+5, len(data))]...))
		}
		if d, _ := mustHash(t, s); hex.EncodeToString(d) != g.digest {
			t.Errorf("seed %d: digest %x, the format-1 code had %s", g.seed, d, g.digest)
		}
	}
}
