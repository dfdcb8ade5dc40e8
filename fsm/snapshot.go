package fsm

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"hash"
	"hash/crc32"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime/debug"
	"strconv"
	"sync"

	"github.com/hashicorp/raft"
	bolt "go.etcd.io/bbolt"

	"github.com/duro-db/duro/internal/vfs"
)

// restoreTempSuffix names the temporary file Restore writes next to the database.
const restoreTempSuffix = ".restore-"

// A snapshot stream is the bbolt file as of the snapshot's transaction, followed by a
// trailer: SHA-256 of the file ‖ its length (8 bytes, big-endian) ‖ snapshotMagic.
//
// The trailer is there because bbolt trusts its file: a truncated or corrupted copy can
// make it fault, panic or loop forever (a page that points to itself). Checking the
// digest before bbolt sees a byte means a snapshot damaged anywhere between the leader's
// transaction and this disk is refused. It cannot protect from a peer that sends a
// well-formed digest of a malicious file; raft trusts its peers with the log already.
const (
	snapshotMagic = "duroSNP1"
	trailerLen    = sha256.Size + 8 + len(snapshotMagic)
)

// errReleased is returned by Persist after Release.
var errReleased = errors.New("fsm: snapshot already released")

// Snapshot commits the open write transaction, then captures the state in a bbolt read
// transaction: every entry applied so far, as raft expects. Apart from that commit it is
// cheap: the copy is made by Persist, while Apply goes on. Until Release, the transaction
// pins the pages it sees, so the file grows by what is written meanwhile.
func (s *Store) Snapshot() (raft.FSMSnapshot, error) {
	s.dbMu.RLock()
	defer s.dbMu.RUnlock()
	if s.db == nil {
		return nil, ErrClosed
	}
	tx, err := s.readCommitted(true)
	if err != nil {
		return nil, fmt.Errorf("fsm: snapshot: %w", err)
	}
	return &snapshot{tx: tx}, nil
}

// snapshot is a consistent copy of the whole database file: every object, the dedup table
// and the applied index, as of one transaction.
type snapshot struct {
	mu sync.Mutex // serialises Persist and Release
	tx *bolt.Tx   // nil once released
}

// Persist streams the database file as of the snapshot's transaction to sink, then the
// trailer.
func (sn *snapshot) Persist(sink raft.SnapshotSink) error {
	sn.mu.Lock()
	defer sn.mu.Unlock()
	if sn.tx == nil {
		_ = sink.Cancel()
		return errReleased
	}
	h := sha256.New()
	n, err := sn.tx.WriteTo(io.MultiWriter(sink, h))
	if err == nil {
		trailer := make([]byte, 0, trailerLen)
		trailer = h.Sum(trailer)
		trailer = binary.BigEndian.AppendUint64(trailer, uint64(n))
		trailer = append(trailer, snapshotMagic...)
		_, err = sink.Write(trailer)
	}
	if err != nil {
		_ = sink.Cancel()
		return fmt.Errorf("fsm: persist snapshot: %w", err)
	}
	if err := sink.Close(); err != nil {
		return fmt.Errorf("fsm: persist snapshot: %w", err)
	}
	return nil
}

// Release ends the snapshot's transaction. Store.Close and Restore wait for it.
func (sn *snapshot) Release() {
	sn.mu.Lock()
	defer sn.mu.Unlock()
	if sn.tx != nil {
		_ = sn.tx.Rollback()
		sn.tx = nil
	}
}

// trailerWriter passes everything but the last trailerLen bytes written to it on to w,
// hashing them; the held-back bytes are the trailer once the stream ends.
type trailerWriter struct {
	w    io.Writer
	h    hash.Hash
	n    int64  // bytes passed on
	tail []byte // the last bytes seen, at most trailerLen once Write returns
}

func (t *trailerWriter) Write(p []byte) (int, error) {
	// Of tail+p, all but the last trailerLen bytes go on: first from tail, then from p.
	flush := len(t.tail) + len(p) - trailerLen
	if flush <= 0 {
		t.tail = append(t.tail, p...)
		return len(p), nil
	}
	fromTail := min(flush, len(t.tail))
	if err := t.pass(t.tail[:fromTail]); err != nil {
		return 0, err
	}
	t.tail = t.tail[:copy(t.tail, t.tail[fromTail:])]
	if err := t.pass(p[:flush-fromTail]); err != nil {
		return 0, err
	}
	t.tail = append(t.tail, p[flush-fromTail:]...)
	return len(p), nil
}

func (t *trailerWriter) pass(b []byte) error {
	if len(b) == 0 {
		return nil
	}
	if _, err := t.w.Write(b); err != nil {
		return err
	}
	t.h.Write(b)
	t.n += int64(len(b))
	return nil
}

// check verifies the trailer against what was passed on.
func (t *trailerWriter) check() error {
	if len(t.tail) != trailerLen || string(t.tail[trailerLen-len(snapshotMagic):]) != snapshotMagic {
		return fmt.Errorf("%w: snapshot has no trailer", ErrNotFSMFile)
	}
	if n := binary.BigEndian.Uint64(t.tail[sha256.Size:]); n != uint64(t.n) {
		return fmt.Errorf("%w: snapshot of %d bytes, trailer says %d", ErrNotFSMFile, t.n, n)
	}
	if !bytes.Equal(t.h.Sum(nil), t.tail[:sha256.Size]) {
		return fmt.Errorf("%w: snapshot checksum mismatch", ErrNotFSMFile)
	}
	return nil
}

// Restore replaces the whole state with a snapshot written by Persist. The stream is
// copied to a temporary file next to the database and checked (trailer digest, every
// page readable, bbolt consistency check, duro layout) before anything is replaced: a bad
// snapshot returns an error wrapping ErrNotFSMFile and leaves the state untouched. The
// swap itself is a rename.
//
// View calls in flight, and snapshots not yet released, finish on the old state first;
// later View calls see the new state. WaitApplied waiters are woken and check again
// against the restored applied index.
func (s *Store) Restore(rc io.ReadCloser) error {
	defer rc.Close()
	if s.closed.Load() {
		return ErrClosed
	}
	// Commit what is applied first: a snapshot that turns out bad leaves the state as it
	// was, and the file must then hold all of it (the swap below needs no open
	// transaction either).
	if err := s.flush(); err != nil {
		return err
	}
	dir, fsys := filepath.Dir(s.path), s.opts.FS
	tmpPath := filepath.Join(dir, filepath.Base(s.path)+restoreTempSuffix+strconv.FormatUint(rand.Uint64(), 36))
	tmp, err := fsys.OpenFile(tmpPath, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return fmt.Errorf("fsm: restore: %w", err)
	}
	renamed := false
	defer func() {
		if !renamed {
			_ = fsys.Remove(tmpPath)
		}
	}()
	tw := &trailerWriter{w: vfs.NewWriter(tmp), h: sha256.New()}
	_, err = io.Copy(tw, rc)
	if err == nil {
		err = tw.check()
	}
	if err == nil && !s.opts.NoSync {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("fsm: restore: %w", err)
	}
	format, err := verifyFile(fsys, tmpPath)
	if err != nil {
		return fmt.Errorf("fsm: restore: %w", err)
	}
	if string(format) == string(formatV1) {
		// Migrate before anything is replaced: a snapshot that cannot be leaves the
		// state as it was.
		db, err := openDB(tmpPath, &s.opts)
		if err == nil {
			err = db.Close()
		}
		if err != nil {
			return fmt.Errorf("fsm: restore: %w", err)
		}
	}

	s.dbMu.Lock()
	defer s.dbMu.Unlock()
	if s.db == nil {
		return ErrClosed
	}
	if err := s.db.Close(); err != nil {
		s.log.Warn("fsm: restore: closing the old state", "err", err)
	}
	s.db = nil
	if err := fsys.Rename(tmpPath, s.path); err != nil {
		// Nothing replaced: carry on with the old file.
		db, oerr := openDB(s.path, &s.opts)
		if oerr == nil {
			s.db = db
		}
		return errors.Join(fmt.Errorf("fsm: restore: %w", err), oerr)
	}
	renamed = true
	if !s.opts.NoSync {
		if err := fsys.SyncDir(dir); err != nil {
			return fmt.Errorf("fsm: restore: %w", err)
		}
	}
	db, err := openDB(s.path, &s.opts)
	if err != nil {
		// The store is unusable: View returns ErrClosed and Apply panics, as it must.
		return fmt.Errorf("fsm: restore: reopening: %w", err)
	}
	s.db = db
	if err := s.load(); err != nil {
		return fmt.Errorf("fsm: restore: %w", err)
	}
	s.log.Info("fsm restored from snapshot", "path", s.path, "bytes", tw.n, "applied", s.applied.Load())
	return nil
}

// verifyFile checks that path is a complete, readable bbolt file with the duro layout,
// and returns its format marker.
//
// The trailer's digest has matched, so these are the bytes the sender's bbolt wrote, but
// its own file may have been damaged on its disk. bbolt reads pages through a memory map,
// and a bad page can make it fault (SIGBUS) or panic deep inside. Hence, in order: the file must hold every page its meta page claims; then every reachable page,
// key and value is read on this goroutine with faults turned into panics, and panics into
// errors; only then does bbolt's own consistency check run (on a goroutine of its own,
// which must not fault: every page it visits has just been read safely).
func verifyFile(fsys vfs.FS, path string) (format []byte, err error) {
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("%w: %v", ErrNotFSMFile, r)
		}
	}()
	info, err := fsys.Stat(path)
	if err != nil {
		return nil, err
	}
	db, err := bolt.Open(path, 0o600, &bolt.Options{ReadOnly: true, Timeout: openTimeout,
		OpenFile: func(name string, flag int, perm os.FileMode) (*os.File, error) {
			return fsys.OpenExternal(name, flag, perm, true)
		}})
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrNotFSMFile, err)
	}
	defer db.Close()
	err = db.View(func(tx *bolt.Tx) error {
		if tx.Size() > info.Size() {
			return fmt.Errorf("%w: truncated: %d bytes of %d", ErrNotFSMFile, info.Size(), tx.Size())
		}
		if err := checkLayout(tx); err != nil {
			return err
		}
		format = bytes.Clone(tx.Bucket(bucketMeta).Get(keyFormat))
		if err := tx.ForEach(func(name []byte, b *bolt.Bucket) error { return readAll(b) }); err != nil {
			return err
		}
		// Drain the channel fully: Check's goroutine holds the transaction until then.
		var first error
		for err := range tx.Check() {
			if first == nil {
				first = fmt.Errorf("%w: %w", ErrNotFSMFile, err)
			}
		}
		return first
	})
	return format, err
}

// readAll reads every key and value of b and its nested buckets, checking key order.
func readAll(b *bolt.Bucket) error {
	var prev []byte
	var sum uint32
	c := b.Cursor()
	for k, v := c.First(); k != nil; k, v = c.Next() {
		if prev != nil && bytes.Compare(prev, k) >= 0 {
			return fmt.Errorf("%w: keys out of order", ErrNotFSMFile)
		}
		prev = k
		if v == nil {
			if nb := b.Bucket(k); nb != nil {
				if err := readAll(nb); err != nil {
					return err
				}
			}
			continue
		}
		// Touch every byte: values may sit on overflow pages past the leaf.
		sum = crc32.Update(sum, crc32.IEEETable, v)
	}
	_ = sum
	return nil
}
