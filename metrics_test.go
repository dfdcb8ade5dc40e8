package duro_test

import (
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/duro-db/duro"
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
