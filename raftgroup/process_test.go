package raftgroup

// Real-crash tests: each node is a child process (this test binary re-executed in node
// mode) killed with SIGKILL. The child exposes a small HTTP API of its own, defined here,
// since the client protocol lives above this package.

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/duro-db/duro/fsm"
	"github.com/duro-db/duro/internal/ports"
	"github.com/duro-db/duro/internal/testutil"
	"github.com/duro-db/duro/transport"
)

const childEnv = "DURO_RAFTGROUP_TEST_NODE"

func TestMain(m *testing.M) {
	if spec := os.Getenv(childEnv); spec != "" {
		runChild(spec)
		return
	}
	os.Exit(m.Run())
}

type childSpec struct {
	ID      string `json:"id"`
	DataDir string `json:"data_dir"`
	Peers   []Peer `json:"peers"`
	HTTP    string `json:"http"`
	Groups  int    `json:"groups"`
}

func runChild(spec string) {
	var s childSpec
	if err := json.Unmarshal([]byte(spec), &s); err != nil {
		fmt.Fprintln(os.Stderr, "bad spec:", err)
		os.Exit(2)
	}
	mux, err := transport.Listen(addrOf(s.Peers, s.ID), transport.Options{})
	if err != nil {
		fmt.Fprintln(os.Stderr, "listen:", err)
		os.Exit(2)
	}
	t := fastTiming()
	node, err := Start(Config{ID: s.ID, DataDir: s.DataDir, Peers: s.Peers, Groups: s.Groups, Timing: t,
		Logger: testLogger().With("n", s.ID)}, mux)
	if err != nil {
		fmt.Fprintln(os.Stderr, "start:", err)
		os.Exit(2)
	}
	http.HandleFunc("/put", func(w http.ResponseWriter, r *http.Request) {
		gid, _ := strconv.ParseUint(r.FormValue("group"), 10, 64)
		obj, _ := hex.DecodeString(r.FormValue("obj"))
		g, err := node.Serving(gid)
		if err != nil {
			writeErr(w, err)
			return
		}
		ctx, cancel := context.WithTimeout(r.Context(), 5*time.Second)
		defer cancel()
		cmd := put(obj, r.FormValue("key"), r.FormValue("val"))
		cmd.Client, _ = hex.DecodeString(r.FormValue("client"))
		cmd.Seq, _ = strconv.ParseUint(r.FormValue("seq"), 10, 64)
		res, err := g.Commit(ctx, cmd)
		if err != nil {
			writeErr(w, err)
			return
		}
		json.NewEncoder(w).Encode(map[string]uint64{"index": res.Index, "version": res.Version})
	})
	http.HandleFunc("/read", func(w http.ResponseWriter, r *http.Request) {
		gid, _ := strconv.ParseUint(r.FormValue("group"), 10, 64)
		obj, _ := hex.DecodeString(r.FormValue("obj"))
		g, err := node.Serving(gid)
		if err != nil {
			writeErr(w, err)
			return
		}
		if err := g.ReadIndex(r.Context()); err != nil {
			writeErr(w, err)
			return
		}
		out := objectDump{Keys: map[string]string{}}
		g.View(func(tx *fsm.Tx) error {
			out.Version = tx.Version(obj)
			return tx.List(obj, fsm.ListOptions{}, func(k, v []byte) bool { out.Keys[string(k)] = string(v); return true })
		})
		json.NewEncoder(w).Encode(out)
	})
	http.HandleFunc("/leading", func(w http.ResponseWriter, r *http.Request) {
		json.NewEncoder(w).Encode(node.Leading())
	})
	if err := http.ListenAndServe(s.HTTP, nil); err != nil {
		fmt.Fprintln(os.Stderr, "http:", err)
		os.Exit(2)
	}
}

type objectDump struct {
	Version uint64            `json:"version"`
	Keys    map[string]string `json:"keys"`
}

func writeErr(w http.ResponseWriter, err error) {
	code := http.StatusInternalServerError
	switch {
	case errors.Is(err, ErrNotLeader):
		code = http.StatusMisdirectedRequest
	case errors.Is(err, ErrUnknownOutcome):
		code = http.StatusServiceUnavailable
	}
	http.Error(w, err.Error(), code)
}

func addrOf(peers []Peer, id string) string {
	for _, p := range peers {
		if p.ID == id {
			return p.Addr
		}
	}
	return ""
}

// procCluster runs nodes as child processes.
type procCluster struct {
	t     *testing.T
	specs []childSpec
	cmds  []*exec.Cmd
	logs  []*os.File
	hc    *http.Client
}

// freeAddr returns a loopback address nothing listens on right now, below the
// ephemeral ports (see internal/ports).
func freeAddr(t *testing.T) string {
	t.Helper()
	addrs, err := ports.Free(1)
	if err != nil {
		t.Fatal(err)
	}
	return addrs[0]
}

func newProcCluster(t *testing.T, n, groups int) *procCluster {
	t.Helper()
	if testing.Short() {
		t.Skip("real-process crash test; skipped with -short")
	}
	pc := &procCluster{t: t, hc: &http.Client{Timeout: 10 * time.Second}}
	var peers []Peer
	for i := 0; i < n; i++ {
		peers = append(peers, Peer{ID: fmt.Sprintf("n%d", i+1), Addr: freeAddr(t)})
	}
	dir := t.TempDir()
	for i := 0; i < n; i++ {
		pc.specs = append(pc.specs, childSpec{ID: peers[i].ID, DataDir: filepath.Join(dir, peers[i].ID),
			Peers: peers, HTTP: freeAddr(t), Groups: groups})
	}
	pc.cmds = make([]*exec.Cmd, n)
	pc.logs = make([]*os.File, n)
	for i := range pc.specs {
		pc.start(i)
	}
	t.Cleanup(func() {
		for i := range pc.cmds {
			pc.kill(i)
		}
		if t.Failed() {
			for _, s := range pc.specs {
				b, _ := os.ReadFile(filepath.Join(dir, s.ID+".log"))
				t.Logf("--- %s log (tail) ---\n%s", s.ID, tail(string(b), 3000))
			}
		}
	})
	return pc
}

func tail(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}

func (pc *procCluster) start(i int) {
	pc.t.Helper()
	spec, _ := json.Marshal(pc.specs[i])
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), childEnv+"="+string(spec))
	f, err := os.OpenFile(filepath.Join(filepath.Dir(pc.specs[i].DataDir), pc.specs[i].ID+".log"), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		pc.t.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = f, f
	if err := cmd.Start(); err != nil {
		pc.t.Fatal(err)
	}
	pc.cmds[i], pc.logs[i] = cmd, f
}

// kill sends SIGKILL: no shutdown code runs, exactly like a crash.
func (pc *procCluster) kill(i int) {
	if pc.cmds[i] == nil {
		return
	}
	pc.cmds[i].Process.Signal(syscall.SIGKILL)
	pc.cmds[i].Wait()
	pc.logs[i].Close()
	pc.cmds[i] = nil
}

func (pc *procCluster) call(i int, path string, out any) (int, error) {
	resp, err := pc.hc.Get("http://" + pc.specs[i].HTTP + path)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		return resp.StatusCode, errors.New(strings.TrimSpace(string(b)))
	}
	return resp.StatusCode, json.Unmarshal(b, out)
}

// findLeader asks each live node once; it is safe to call from any goroutine.
func (pc *procCluster) findLeader(gid uint64) (int, bool) {
	for i := range pc.specs {
		var leading []uint64
		if _, err := pc.call(i, "/leading", &leading); err != nil {
			continue
		}
		for _, g := range leading {
			if g == gid {
				return i, true
			}
		}
	}
	return -1, false
}

// leaderOf waits for a live node serving gid.
func (pc *procCluster) leaderOf(gid uint64) int {
	pc.t.Helper()
	idx := -1
	testutil.WaitFor(pc.t, 30*time.Second, fmt.Sprintf("leader of group %d", gid), func() bool {
		var ok bool
		idx, ok = pc.findLeader(gid)
		return ok
	})
	return idx
}

// write tries once at the current leader. acked means the write is durable; an error means
// it may or may not be. Every try of one key carries the same request ID (the object and
// key), so a retry after an unknown outcome is applied at most once, as the SDK does it.
func (pc *procCluster) write(gid uint64, obj []byte, key string) (acked bool, err error) {
	i, ok := pc.findLeader(gid)
	if !ok {
		time.Sleep(50 * time.Millisecond) // back off while there is no leader
		return false, errors.New("no leader")
	}
	var res map[string]uint64
	seq := crc32.ChecksumIEEE([]byte(key)) + 1
	_, err = pc.call(i, fmt.Sprintf("/put?group=%d&obj=%x&key=%s&val=v-%s&client=%x&seq=%d", gid, obj, key, key, obj[:16], seq), &res)
	return err == nil, err
}

func (pc *procCluster) read(gid uint64, obj []byte) objectDump {
	pc.t.Helper()
	var out objectDump
	testutil.WaitFor(pc.t, 30*time.Second, "a linearizable read", func() bool {
		_, err := pc.call(pc.leaderOf(gid), fmt.Sprintf("/read?group=%d&obj=%x", gid, obj), &out)
		return err == nil
	})
	return out
}

// Must show 3: SIGKILL the leader's process; a new leader appears, every acknowledged write
// is present, and new writes succeed.
func TestKillLeaderProcess(t *testing.T) {
	pc := newProcCluster(t, 3, 4)
	const gid = 1
	obj := randomID()
	var mu sync.Mutex
	acked := map[string]bool{}
	attempted := map[string]bool{}
	// Each key gets 30 s to be acknowledged, a whole run of keys 90 s: a cluster that
	// stops taking writes fails the test (with the nodes' logs) instead of hanging it.
	var stuck atomic.Bool
	writer := func(prefix string, n int) {
		phase := time.Now().Add(90 * time.Second)
		for i := 0; i < n && !stuck.Load(); i++ {
			key := fmt.Sprintf("%s%04d", prefix, i)
			deadline := time.Now().Add(30 * time.Second)
			if deadline.After(phase) {
				deadline = phase
			}
			if !time.Now().Before(deadline) {
				stuck.Store(true)
				return
			}
			for time.Now().Before(deadline) {
				mu.Lock()
				attempted[key] = true
				mu.Unlock()
				ok, _ := pc.write(gid, obj, key)
				if ok {
					mu.Lock()
					acked[key] = true
					mu.Unlock()
					break
				}
			}
		}
	}
	writer("a", 100)
	if stuck.Load() {
		t.Fatalf("writes are not acknowledged")
	}
	victim := pc.leaderOf(gid)
	// Writes in flight while the leader dies.
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); writer("b", 100) }()
	testutil.WaitFor(t, 10*time.Second, "writes to flow", func() bool { mu.Lock(); defer mu.Unlock(); return len(acked) > 120 })
	pc.kill(victim)
	wg.Wait()
	if stuck.Load() {
		t.Fatalf("writes stopped being acknowledged after the leader was killed")
	}
	newLeader := pc.leaderOf(gid)
	if newLeader == victim {
		t.Fatalf("dead node still leads")
	}
	writer("c", 20)

	got := pc.read(gid, obj)
	for k := range acked {
		if got.Keys[k] != "v-"+k {
			t.Fatalf("acknowledged write %s lost after leader SIGKILL", k)
		}
	}
	for k := range got.Keys {
		if !attempted[k] {
			t.Fatalf("key %s present but never written", k)
		}
	}
	if int(got.Version) != len(got.Keys) {
		t.Fatalf("version %d but %d distinct keys: an entry was applied twice or lost", got.Version, len(got.Keys))
	}
	t.Logf("acked %d, present %d, version %d; leader %s killed, %s took over",
		len(acked), len(got.Keys), got.Version, pc.specs[victim].ID, pc.specs[newLeader].ID)
}

// Must show 4: SIGKILL every node at once, restart all from their data dirs: every
// acknowledged write is present and no entry was applied twice. Each command puts a new key
// and bumps the object's version, a counter the state machine keeps: version == number of
// keys holds only if every applied entry was applied exactly once.
func TestKillAllProcessesAndRestart(t *testing.T) {
	pc := newProcCluster(t, 3, 4)
	objs := map[uint64][]byte{1: randomID(), 2: randomID(), 3: randomID(), 4: randomID()}
	var mu sync.Mutex
	acked := map[uint64]map[string]bool{}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for gid := uint64(1); gid <= 4; gid++ {
		acked[gid] = map[string]bool{}
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				key := fmt.Sprintf("k%05d", i)
				if ok, _ := pc.write(gid, objs[gid], key); ok {
					mu.Lock()
					acked[gid][key] = true
					mu.Unlock()
				}
			}
		}()
	}
	testutil.WaitFor(t, 20*time.Second, "writes to flow", func() bool {
		mu.Lock()
		defer mu.Unlock()
		for _, a := range acked {
			if len(a) < 50 {
				return false
			}
		}
		return true
	})
	// Kill all three while writes are in flight.
	for i := range pc.specs {
		pc.cmds[i].Process.Signal(syscall.SIGKILL)
	}
	for i := range pc.specs {
		pc.kill(i)
	}
	close(stop)
	wg.Wait()
	for i := range pc.specs {
		pc.start(i)
	}
	for gid, obj := range objs {
		got := pc.read(gid, obj)
		for k := range acked[gid] {
			if got.Keys[k] != "v-"+k {
				t.Fatalf("group %d: acknowledged write %s lost after killing every node", gid, k)
			}
		}
		if int(got.Version) != len(got.Keys) {
			t.Fatalf("group %d: version %d but %d keys: an entry was applied twice", gid, got.Version, len(got.Keys))
		}
		t.Logf("group %d: acked %d, present %d, version %d", gid, len(acked[gid]), len(got.Keys), got.Version)
	}
}
