package objects

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/duro-db/duro/internal/objid"
)

func TestContextAccessors(t *testing.T) {
	clock := time.Unix(1_700_000_000, 42)
	f := newFixture(t, Options{Now: func() time.Time { return clock }})
	type seen struct {
		ID    objid.ID `json:"id"`
		Name  string   `json:"name"`
		Class string   `json:"class"`
		Now   int64    `json:"now"`
	}
	f.fn("who", func(ctx *Context) (any, error) {
		if ctx.Storage() == nil || ctx.Err() != nil {
			return nil, errors.New("no storage or a dead context")
		}
		return seen{ctx.ID(), ctx.Name(), ctx.Class(), ctx.Now().UnixNano()}, nil
	})
	req := f.req("alice", "Do")
	req.Args = mustMarshal(t, "who")
	got, err := callReq[seen](context.Background(), f.rt, req, nil)
	want := seen{objid.FromName("T", "alice"), "alice", "T", clock.UnixNano()}
	if err != nil || got != want {
		t.Fatalf("context = %+v, %v; want %+v", got, err, want)
	}
	// Addressed by ID only: no name.
	req.Name = ""
	got, err = callReq[seen](context.Background(), f.rt, req, nil)
	if err != nil || got.Name != "" || got.ID != want.ID {
		t.Fatalf("context by ID = %+v, %v", got, err)
	}
}
