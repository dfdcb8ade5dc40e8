package duro_test

import (
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/duro-db/duro"
	"github.com/duro-db/duro/internal/buildinfo"
	"github.com/duro-db/duro/internal/testutil"
)

// /metrics exposes the heartbeat rounds a node sends its peers: an operator's first look
// at whether nodes hear each other.
func TestMetricsShowHeartbeatRounds(t *testing.T) {
	c := newCluster(t, 3, func(cfg *duro.Config) { cfg.HTTP = "127.0.0.1:0" })
	testutil.WaitFor(t, 10*time.Second, "heartbeat rounds in /metrics", func() bool {
		for _, s := range c.servers {
			resp, err := http.Get("http://" + s.HTTPAddr() + "/metrics")
			if err != nil {
				return false
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if strings.Contains(string(b), `duro_heartbeat_rounds_total{outcome="ok",peer="n`) {
				return true
			}
		}
		return false
	})
}

// /metrics names the build a node runs, so an operator can see which nodes run which
// version: duro_build_info{commit,goversion,version} 1.
func TestMetricsShowBuildInfo(t *testing.T) {
	c := newCluster(t, 1, func(cfg *duro.Config) { cfg.HTTP = "127.0.0.1:0" })
	resp, err := http.Get("http://" + c.servers[0].HTTPAddr() + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	b, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		t.Fatal(err)
	}
	bi := buildinfo.Get()
	// The text format sorts labels by name.
	want := fmt.Sprintf("duro_build_info{commit=%q,goversion=%q,version=%q} 1\n", bi.Commit, bi.GoVersion, bi.Version)
	if !strings.Contains(string(b), want) {
		t.Errorf("/metrics lacks %q; its duro_build_info lines:\n%s", want, grepLines(string(b), "duro_build_info"))
	}
}

func grepLines(s, substr string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, substr) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}
