package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/duro-db/duro"
	"github.com/duro-db/duro/internal/testutil"
	"github.com/duro-db/duro/raftgroup"
	"github.com/duro-db/duro/transport"
)

// serverSettings runs `duro server args...` with env set, up to flag resolution only: the
// command's action is replaced by one that records what it would have started with.
func serverSettings(t *testing.T, env map[string]string, args ...string) (groups int, id string, idle time.Duration) {
	t.Helper()
	for k, v := range env {
		t.Setenv(k, v)
	}
	var stderr strings.Builder
	app := newApp(strings.NewReader(""), io.Discard, &stderr)
	found := false
	for _, c := range app.Commands {
		if c.Name == "server" {
			found = true
			c.Action = func(c *cli.Context) error {
				groups, id, idle = c.Int("groups"), c.String("id"), c.Duration("idle-timeout")
				return nil
			}
		}
	}
	if !found {
		t.Fatal("no server command")
	}
	runMu.Lock()
	err := app.RunContext(context.Background(), append([]string{"duro", "server"}, args...))
	runMu.Unlock()
	if err != nil {
		t.Fatalf("duro server %s: %v (stderr %q)", strings.Join(args, " "), err, stderr.String())
	}
	return groups, id, idle
}

// A setting comes from the flag, else the DURO_* variable, else the --config file, else
// the default. Not parallel: t.Setenv.
func TestServerSettingsPrecedence(t *testing.T) {
	for _, k := range []string{"DURO_CONFIG", "DURO_GROUPS", "DURO_ID", "DURO_IDLE_TIMEOUT"} {
		t.Setenv(k, "") // the environment the test runs in must not leak into the cases
		os.Unsetenv(k)
	}
	file := filepath.Join(t.TempDir(), "duro.yaml")
	if err := os.WriteFile(file, []byte("groups: 5\nid: from-file\nidle-timeout: 5m\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name       string
		env        map[string]string
		args       []string
		wantGroups int
		wantID     string
		wantIdle   time.Duration
	}{
		{"defaults", nil, nil, raftgroup.DefaultGroups, "", time.Minute},
		{"file over default", nil, []string{"--config", file}, 5, "from-file", 5 * time.Minute},
		{"file named by DURO_CONFIG", map[string]string{"DURO_CONFIG": file}, nil, 5, "from-file", 5 * time.Minute},
		{"env over file", map[string]string{"DURO_GROUPS": "7", "DURO_ID": "from-env"}, []string{"--config", file}, 7, "from-env", 5 * time.Minute},
		{"env over default", map[string]string{"DURO_GROUPS": "7", "DURO_IDLE_TIMEOUT": "2s"}, nil, 7, "", 2 * time.Second},
		{"flag over env over file", map[string]string{"DURO_GROUPS": "7", "DURO_ID": "from-env"},
			[]string{"--config", file, "--groups", "9", "--id", "from-flag"}, 9, "from-flag", 5 * time.Minute},
		{"flag over default", nil, []string{"--groups", "9", "--idle-timeout", "1s"}, 9, "", time.Second},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			groups, id, idle := serverSettings(t, tc.env, tc.args...)
			if groups != tc.wantGroups || id != tc.wantID || idle != tc.wantIdle {
				t.Errorf("groups=%d id=%q idle-timeout=%v, want %d %q %v", groups, id, idle, tc.wantGroups, tc.wantID, tc.wantIdle)
			}
		})
	}
}

// A config file that cannot be read, or has a key of the wrong type, is one line.
func TestServerBadConfigFile(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.yaml")
	if err := os.WriteFile(bad, []byte("groups: [\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{filepath.Join(dir, "missing.yaml"), bad} {
		r := runCLI(t, "server", "--config", f, "--id", "n1", "--peers", "n1=127.0.0.1:1", "--http", "")
		if r.code == exitOK || !strings.Contains(r.stderr, filepath.Base(f)) {
			t.Errorf("--config %s:\n%s", f, r)
		}
		wantOneLine(t, r)
	}
}

// duro server refuses, in one line, what it cannot do: open another node's data, or
// listen on a port in use.
func TestServerRefuses(t *testing.T) {
	t.Parallel()
	t.Run("another node's data dir", func(t *testing.T) {
		t.Parallel()
		dir := t.TempDir()
		mux, err := transport.Listen("127.0.0.1:0", transport.Options{})
		if err != nil {
			t.Fatal(err)
		}
		n1, err := duro.Start(context.Background(), duro.Config{
			ID: "n1", DataDir: dir, Peers: []duro.Peer{{ID: "n1", Addr: mux.Addr().String()}},
			Groups: 1, Replicas: 1, NoSync: true, Mux: mux,
		})
		if err != nil {
			t.Fatal(err)
		}
		n1.Close()
		addr := freeAddr(t)
		r := runCLI(t, "server", "--id", "n2", "--peers", "n2="+addr, "--listen", addr, "--replicas", "1",
			"--http", "", "--data-dir", dir)
		if r.code != exitFailed || !strings.Contains(r.stderr, `"n1"`) || !strings.Contains(r.stderr, dir) {
			t.Errorf("want exit 1 naming n1 and %s:\n%s", dir, r)
		}
		wantOneLine(t, r)
	})
	for _, port := range []string{"listen", "http"} {
		t.Run(port+" port in use", func(t *testing.T) {
			t.Parallel()
			busy, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			defer busy.Close()
			listen, httpAddr := freeAddr(t), freeAddr(t)
			if port == "listen" {
				listen = busy.Addr().String()
			} else {
				httpAddr = busy.Addr().String()
			}
			r := runCLI(t, "server", "--id", "n1", "--peers", "n1="+listen, "--listen", listen, "--replicas", "1",
				"--http", httpAddr, "--data-dir", t.TempDir(), "--log-level", "error")
			if r.code != exitFailed || !strings.Contains(r.stderr, busy.Addr().String()) || !strings.Contains(r.stderr, "address already in use") {
				t.Errorf("want exit 1 naming %s in use:\n%s", busy.Addr(), r)
			}
			wantOneLine(t, r)
		})
	}
}

// nodeStatus reads GET /status from a node's HTTP port.
func nodeStatus(httpAddr string) (*duro.NodeStatus, error) {
	resp, err := http.Get("http://" + httpAddr + "/status")
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	var st duro.NodeStatus
	if err := json.NewDecoder(resp.Body).Decode(&st); err != nil {
		return nil, err
	}
	return &st, nil
}

// A node started from a config file, the environment and flags runs with the settings
// precedence picks, and SIGTERM stops it with status 0.
func TestServerProcessSettings(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	listen, httpAddr := freeAddr(t), freeAddr(t)
	file := filepath.Join(dir, "duro.yaml")
	yaml := fmt.Sprintf("id: n1\npeers: %q\nlisten: %q\nreplicas: 1\ngroups: 3\nlog-level: error\ndata-dir: %q\n",
		"n1="+listen, listen, filepath.Join(dir, "data"))
	if err := os.WriteFile(file, []byte(yaml), 0o644); err != nil {
		t.Fatal(err)
	}
	p := startProc(t, []string{"DURO_GROUPS=2"}, "server", "--config", file, "--http", httpAddr)
	var st *duro.NodeStatus
	testutil.Eventually(t, 20*time.Second, func() error {
		p.mustRun(t)
		var err error
		if st, err = nodeStatus(httpAddr); err != nil {
			return fmt.Errorf("%v\n%s", err, p)
		}
		if !st.Ready {
			return fmt.Errorf("not ready: %s", st.NotReady)
		}
		return nil
	})
	// DURO_GROUPS=2 beat the file's 3: two data groups and the meta group, each on n1
	// alone (the file's replicas: 1).
	if st.ID != "n1" || len(st.Groups) != 3 {
		t.Fatalf("status: id %q, %d groups, want n1 and 3 (2 data + meta): %+v", st.ID, len(st.Groups), st)
	}
	for _, g := range st.Groups {
		if len(g.Replicas) != 1 || g.Replicas[0] != "n1" || g.Role != "leader" {
			t.Errorf("group %d: %+v, want led by n1, its only replica", g.ID, g)
		}
	}
	if err := p.signalAndWait(t, syscall.SIGTERM, 15*time.Second); err != nil {
		t.Fatalf("exit after SIGTERM: %v\n%s", err, p)
	}
}

// Without --listen a node listens on its own address in --peers, which is where peers
// and clients dial it.
func TestServerListensOnItsPeerAddress(t *testing.T) {
	t.Parallel()
	addr, httpAddr := freeAddr(t), freeAddr(t)
	p := startProc(t, nil, "server", "--id", "n1", "--peers", "n1="+addr, "--replicas", "1", "--groups", "1",
		"--http", httpAddr, "--data-dir", t.TempDir(), "--log-level", "error")
	testutil.Eventually(t, 20*time.Second, func() error {
		p.mustRun(t)
		st, err := nodeStatus(httpAddr)
		if err != nil {
			return fmt.Errorf("%v\n%s", err, p)
		}
		if !st.Ready {
			return fmt.Errorf("not ready: %s", st.NotReady)
		}
		return nil
	})
	if r := runCLI(t, "members", "-e", addr, "--timeout", "5s"); r.code != exitOK {
		t.Errorf("members -e %s (the node's address in --peers):\n%s", addr, r)
	}
	if err := p.signalAndWait(t, syscall.SIGTERM, 15*time.Second); err != nil {
		t.Fatalf("exit after SIGTERM: %v\n%s", err, p)
	}
}
