package duro

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/pprof"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/duro-db/duro/raftgroup"
)

// The HTTP port serves operators, not clients:
//
//	/livez         200 while the process runs
//	/readyz        200 once the meta group has a leader and every replica here has caught up
//	/status        this node's view of its groups, as JSON (what `duro status` shows)
//	/metrics       Prometheus
//	/debug/pprof/  Go profiles
func (s *Server) httpHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /livez", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintln(w, "ok")
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		if err := s.ready(); err != nil {
			http.Error(w, "not ready: "+err.Error(), http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintln(w, "ok")
	})
	mux.HandleFunc("GET /status", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		enc.Encode(s.Status())
	})
	mux.Handle("GET /metrics", promhttp.HandlerFor(s.metrics.Registry, promhttp.HandlerOpts{Registry: s.metrics.Registry}))
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	return mux
}

// ready reports why this node should not yet take traffic: no meta leader, or a replica
// whose state lags the commit index it knows of.
func (s *Server) ready() error {
	meta := s.node.Group(raftgroup.MetaGroup)
	if id, _ := meta.Leader(); id == "" {
		return errors.New("meta group has no leader")
	}
	for _, g := range s.node.Groups() {
		if id, _ := g.Leader(); id == "" {
			return fmt.Errorf("group %d has no leader", g.ID())
		}
		if !g.CaughtUp(g.Raft().CommitIndex()) {
			return fmt.Errorf("group %d has not applied its committed entries yet", g.ID())
		}
	}
	return nil
}

// startHTTP serves the operator endpoints on cfg.HTTP, if set.
func (s *Server) startHTTP() error {
	if s.cfg.HTTP == "" {
		return nil
	}
	ln, err := net.Listen("tcp", s.cfg.HTTP)
	if err != nil {
		return fmt.Errorf("http listener: %w", err)
	}
	s.httpLn = ln
	s.http = &http.Server{Handler: s.httpHandler(), ReadHeaderTimeout: 10 * time.Second}
	go func() {
		if err := s.http.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			s.log.Error("http server", "err", err)
		}
	}()
	return nil
}

func (s *Server) stopHTTP() {
	if s.http == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	s.http.Shutdown(ctx)
}

// HTTPAddr returns the address of the operator HTTP endpoints, or "" when they are off.
func (s *Server) HTTPAddr() string {
	if s.httpLn == nil {
		return ""
	}
	return s.httpLn.Addr().String()
}
