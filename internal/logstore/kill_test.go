package logstore

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hashicorp/raft"
)

// killChildEnv makes the test binary a writer process for
// TestWALKeepsAcknowledgedLogsThroughKill: its value is the store's path.
const killChildEnv = "DURO_LOGSTORE_KILL_WRITER"

func TestMain(m *testing.M) {
	if path := os.Getenv(killChildEnv); path != "" {
		runKillWriter(path)
		return
	}
	os.Exit(m.Run())
}

// killEntry is entry i of the kill test: its padding, 0 to 9 KB, makes frames
// end anywhere in a block and some span several.
func killEntry(i uint64) *raft.Log {
	l := entry(1, i, 1)
	pad := int(i*7919) % 9000
	for j := range pad {
		l.Data = append(l.Data, byte(i+uint64(j)))
	}
	return l
}

// runKillWriter appends entries to group 1 of the store at path, with fsync on
// and small segments, from the one after its last, forever. After each append
// returns it prints the index, with "direct" when the segment written to took
// direct writes.
func runKillWriter(path string) {
	segmentSize = 256 << 10
	s, err := Open(path, Options{})
	if err != nil {
		fmt.Fprintln(os.Stderr, "open:", err)
		os.Exit(2)
	}
	g, err := s.Group(1)
	if err == nil {
		var last uint64
		if last, err = g.LastIndex(); err == nil {
			for i := last + 1; err == nil; i++ {
				if err = g.StoreLog(killEntry(i)); err == nil {
					// The writer goroutine alone touches the segments; a
					// racy read of one pointer is fine for a report.
					how := ""
					if s.wal.active().direct != nil {
						how = " direct"
					}
					fmt.Printf("%d%s\n", i, how)
				}
			}
		}
	}
	fmt.Fprintln(os.Stderr, "write:", err)
	os.Exit(2)
}

// kill -9 at random points while a process appends with fsync on: every entry
// whose append returned is there after, and intact, whichever segments
// (fallocated, or zeroed spares written directly) held it.
func TestWALKeepsAcknowledgedLogsThroughKill(t *testing.T) {
	if testing.Short() {
		t.Skip("kills writer processes")
	}
	path := filepath.Join(t.TempDir(), "logs.db")
	var acked uint64
	direct := false
	for round, after := range []uint64{150, 400, 90, 600, 250} {
		cmd := exec.Command(os.Args[0], "-test.run=^$")
		cmd.Env = append(os.Environ(), killChildEnv+"="+path)
		out, err := cmd.StdoutPipe()
		mustOK(t, err)
		cmd.Stderr = os.Stderr
		mustOK(t, cmd.Start())
		sc := bufio.NewScanner(out)
		start, n := acked, uint64(0)
		deadline := time.Now().Add(30 * time.Second)
		for n < after && sc.Scan() {
			f := strings.Fields(sc.Text())
			i, err := strconv.ParseUint(f[0], 10, 64)
			mustOK(t, err)
			if i != acked+1 {
				t.Fatalf("round %d: the writer acknowledged %d after %d", round, i, acked)
			}
			acked, n = i, n+1
			direct = direct || len(f) > 1
			if time.Now().After(deadline) {
				t.Fatalf("round %d: %d appends in 30 s", round, n)
			}
		}
		mustOK(t, cmd.Process.Signal(syscall.SIGKILL))
		_ = cmd.Wait()
		if n < after {
			t.Fatalf("round %d: the writer stopped after %d appends", round, n)
		}

		s := openStore(t, path, Options{})
		g := group(t, s, 1)
		last, err := g.LastIndex()
		mustOK(t, err)
		if last < acked {
			t.Fatalf("round %d: last index %d after the kill, %d were acknowledged", round, last, acked)
		}
		for i := start + 1; i <= acked; i++ {
			var got raft.Log
			if err := g.GetLog(i, &got); err != nil {
				t.Fatalf("round %d: entry %d, acknowledged: %v", round, i, err)
			}
			assertLogEqual(t, &got, killEntry(i))
		}
		acked = last // an entry written but not yet acknowledged may have made it
		closeStore(t, s)
	}
	if len(walSegments(t, path)) < 2 {
		t.Fatalf("%d segments: the writes never left the first", len(walSegments(t, path)))
	}
	if !direct {
		t.Logf("no direct writes: the file system under %s does not take them", path)
	}
}
