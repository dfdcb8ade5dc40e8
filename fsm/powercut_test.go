package fsm

import (
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"

	"github.com/duro-db/duro/internal/vfs/crashfs"
)

// A store opened without fsync is durable once Close returns: a power cut right after a
// clean close, with every write the disk had not been told to sync lost, leaves the file
// whole and current. (Its owner trusts a cleanly closed file without rebuilding it.)
func TestCloseWithoutFsyncLeavesTheFileDurable(t *testing.T) {
	root := filepath.Join(t.TempDir(), "disk")
	if err := os.Mkdir(root, 0o700); err != nil {
		t.Fatal(err)
	}
	disk, err := crashfs.New(root, rand.New(rand.NewPCG(1, 1)))
	if err != nil {
		t.Fatal(err)
	}
	disk.KeepNothing()
	path := filepath.Join(root, "state.db")
	s, err := Open(path, Options{NoSync: true, FS: disk, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	obj := testID(1)
	for i := range 50 {
		applyCmds(t, s, cmd(obj, put(fmt.Sprintf("k%02d", i), "v")))
	}
	want := s.AppliedIndex()
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	img := filepath.Join(t.TempDir(), "after")
	if _, err := disk.Cut(img); err != nil {
		t.Fatal(err)
	}
	s, err = Open(filepath.Join(img, "state.db"), Options{NoSync: true, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatalf("open after the power cut: %v", err)
	}
	defer s.Close()
	if got := s.AppliedIndex(); got != want {
		t.Fatalf("applied index after the power cut = %d, want %d", got, want)
	}
	if kvs := dump(t, s, obj); len(kvs) != 50 {
		t.Fatalf("%d keys after the power cut, want 50", len(kvs))
	}
}
