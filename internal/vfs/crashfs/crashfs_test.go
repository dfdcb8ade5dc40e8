package crashfs

import (
	"bytes"
	"errors"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"
	"unsafe"

	"github.com/duro-db/duro/internal/vfs"
)

func newFS(t *testing.T, seed uint64) *FS {
	t.Helper()
	root := filepath.Join(t.TempDir(), "root")
	if err := os.Mkdir(root, 0o700); err != nil {
		t.Fatal(err)
	}
	c, err := New(root, rand.New(rand.NewPCG(seed, 1)))
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func create(t *testing.T, c *FS, name string, data []byte) vfs.File {
	t.Helper()
	f, err := c.OpenFile(filepath.Join(c.Root(), name), os.O_CREATE|os.O_RDWR, 0o600)
	must(t, err)
	_, err = f.WriteAt(data, 0)
	must(t, err)
	return f
}

// cut cuts power and returns the image's directory.
func cut(t *testing.T, c *FS) string {
	t.Helper()
	dst := filepath.Join(t.TempDir(), "image")
	if _, err := c.Cut(dst); err != nil {
		t.Fatal(err)
	}
	return dst
}

func read(t *testing.T, dir, name string) ([]byte, bool) {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, name))
	if errors.Is(err, os.ErrNotExist) {
		return nil, false
	}
	must(t, err)
	return b, true
}

func TestSyncedSurvivesUnsyncedDoesNot(t *testing.T) {
	c := newFS(t, 1)
	c.KeepNothing()
	synced := create(t, c, "synced", []byte("durable"))
	must(t, synced.Sync())
	_, err := synced.WriteAt([]byte("DUR"), 0) // after the sync: pending
	must(t, err)
	create(t, c, "unsynced", []byte("lost"))
	must(t, c.SyncDir(c.Root()))
	img := cut(t, c)
	if b, ok := read(t, img, "synced"); !ok || string(b) != "durable" {
		t.Fatalf("synced file = %q, %v; want its synced content", b, ok)
	}
	if b, ok := read(t, img, "unsynced"); !ok || len(b) != 0 {
		t.Fatalf("unsynced file = %q, %v; want it there, empty", b, ok)
	}
}

func TestNamesNeedTheirDirectorySynced(t *testing.T) {
	c := newFS(t, 1)
	c.KeepNothing()
	f := create(t, c, "a", []byte("x"))
	must(t, f.Sync())
	must(t, c.MkdirAll(filepath.Join(c.Root(), "d", "e"), 0o700))
	img := cut(t, c)
	if _, ok := read(t, img, "a"); ok {
		t.Fatal("a file whose directory was never synced survived")
	}
	if _, err := os.Stat(filepath.Join(img, "d")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("an unsynced directory survived: %v", err)
	}

	c = newFS(t, 1)
	c.KeepNothing()
	f = create(t, c, "a", []byte("x"))
	must(t, f.Sync())
	must(t, c.SyncDir(c.Root()))
	must(t, c.Rename(filepath.Join(c.Root(), "a"), filepath.Join(c.Root(), "b")))
	img = cut(t, c)
	if b, ok := read(t, img, "a"); !ok || string(b) != "x" {
		t.Fatalf("before an unsynced rename: a = %q, %v", b, ok)
	}
	if _, ok := read(t, img, "b"); ok {
		t.Fatal("an unsynced rename landed with KeepNothing")
	}
}

// With random choices, a pending write lands torn: over seeds, images hold every mix of
// old and new sectors, and never a byte of anything else.
func TestPendingWritesTearBySector(t *testing.T) {
	old := bytes.Repeat([]byte{'o'}, 4*sector)
	seen := map[string]bool{}
	for seed := range uint64(64) {
		c := newFS(t, seed)
		f := create(t, c, "f", old)
		must(t, f.Sync())
		must(t, c.SyncDir(c.Root()))
		_, err := f.WriteAt(bytes.Repeat([]byte{'n'}, 4*sector), 0)
		must(t, err)
		b, ok := read(t, cut(t, c), "f")
		if !ok || len(b) != len(old) {
			t.Fatalf("seed %d: %d bytes, %v", seed, len(b), ok)
		}
		var mix []byte
		for s := 0; s < len(b); s += sector {
			sec := b[s : s+sector]
			switch {
			case bytes.Equal(sec, old[:sector]):
				mix = append(mix, 'o')
			case bytes.Equal(sec, bytes.Repeat([]byte{'n'}, sector)):
				mix = append(mix, 'n')
			default:
				t.Fatalf("seed %d: sector %d is neither old nor new", seed, s/sector)
			}
		}
		seen[string(mix)] = true
	}
	if len(seen) < 10 {
		t.Fatalf("only %d of 16 mixes of sectors in 64 seeds: %v", len(seen), seen)
	}
}

func TestCutAtOpFailsThatOpAndAllLater(t *testing.T) {
	c := newFS(t, 1)
	dst := filepath.Join(t.TempDir(), "image")
	f := create(t, c, "f", []byte("a")) // ops 1, 2
	c.CutAtOp(4, dst)
	must(t, f.Sync()) // op 3
	if _, err := f.WriteAt([]byte("b"), 1); !errors.Is(err, ErrPowerCut) {
		t.Fatalf("write at the cut = %v, want ErrPowerCut", err)
	}
	select {
	case <-c.Done():
	default:
		t.Fatal("Done not closed after the cut")
	}
	if err := f.Sync(); !errors.Is(err, ErrPowerCut) {
		t.Fatalf("sync after the cut = %v, want ErrPowerCut", err)
	}
	if _, err := c.OpenFile(filepath.Join(c.Root(), "g"), os.O_CREATE|os.O_RDWR, 0o600); !errors.Is(err, ErrPowerCut) {
		t.Fatalf("create after the cut = %v, want ErrPowerCut", err)
	}
	must(t, c.Err())
	if _, err := os.Stat(dst); err != nil {
		t.Fatalf("no image: %v", err)
	}
}

func TestDirectWritesAreDurableWhenTheyReturn(t *testing.T) {
	c := newFS(t, 1)
	c.KeepNothing()
	f := create(t, c, "f", make([]byte, 4096))
	must(t, f.Sync())
	must(t, c.SyncDir(c.Root()))
	d, err := c.OpenDirect(filepath.Join(c.Root(), "f"))
	if err != nil {
		t.Skipf("no O_DIRECT here: %v", err)
	}
	buf := make([]byte, 4096+4096)
	off := 4096 - int(uintptrOf(buf)%4096)
	blk := buf[off : off+4096]
	copy(blk, "direct")
	_, err = d.WriteAt(blk, 0)
	must(t, err)
	b, _ := read(t, cut(t, c), "f")
	if !bytes.HasPrefix(b, []byte("direct")) {
		t.Fatalf("a direct write that returned is not in the image: %q", b[:8])
	}
}

// An external file that does not sync itself is durable as of its last Sync through
// the FS; one that does is what its writer left.
func TestExternalFiles(t *testing.T) {
	c := newFS(t, 1)
	c.KeepNothing()
	name := filepath.Join(c.Root(), "db")
	ext, err := c.OpenExternal(name, os.O_CREATE|os.O_RDWR, 0o600, false)
	must(t, err)
	self, err := c.OpenExternal(name+".self", os.O_CREATE|os.O_RDWR, 0o600, true)
	must(t, err)
	must(t, c.SyncDir(c.Root()))
	_, err = ext.WriteAt([]byte("first"), 0)
	must(t, err)
	_, err = self.WriteAt([]byte("self"), 0)
	must(t, err)
	must(t, vfs.SyncFile(c, name))
	_, err = ext.WriteAt([]byte("SECOND"), 0)
	must(t, err)
	img := cut(t, c)
	if b, _ := read(t, img, "db"); string(b) != "first" {
		t.Fatalf("external file = %q, want its content at the last sync", b)
	}
	if b, _ := read(t, img, "db.self"); string(b) != "self" {
		t.Fatalf("self-synced external file = %q, want its content now", b)
	}
}

func uintptrOf(b []byte) uintptr { return uintptr(unsafe.Pointer(unsafe.SliceData(b))) }
