package objects

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/duro-db/duro/internal/objid"
)

// fixture is a Runtime over a memGroup with a test class "T" whose handlers count
// themselves and detect overlapping invocations (the input gate).
type fixture struct {
	t   testing.TB
	reg *Registry
	rt  *Runtime
	g   *memGroup

	mu  sync.Mutex
	fns map[string]func(ctx *Context) (any, error)

	running  atomic.Int32 // handlers running now
	overlaps atomic.Int32 // times a handler started while another ran
	inits    atomic.Int32 // Init calls
	handled  atomic.Int32 // handler invocations (Add, Get, Do)
	// initWrite makes Init count activations in storage key "inits".
	initWrite atomic.Bool
}

type tObj struct {
	f     *fixture
	local int // in-memory state, dropped by resets
}

func (o *tObj) Init(ctx *Context) error {
	o.f.inits.Add(1)
	if o.f.initWrite.Load() {
		n, _, err := GetAs[int](ctx.Storage(), "inits")
		if err != nil {
			return err
		}
		return ctx.Storage().Put("inits", n+1)
	}
	return nil
}

// enter and exit bracket every handler: the overlap detector.
func (o *tObj) enter() {
	if o.f.running.Add(1) != 1 {
		o.f.overlaps.Add(1)
	}
	o.f.handled.Add(1)
}

func (o *tObj) exit() { o.f.running.Add(-1) }

func newFixture(t testing.TB, opts Options) *fixture {
	t.Helper()
	f := &fixture{t: t, reg: NewRegistry(), fns: map[string]func(*Context) (any, error){}}
	RegisterIn(f.reg, "T", func() *tObj { return &tObj{f: f} },
		// Add is an unlocked read-modify-write of key "n".
		Method("Add", func(o *tObj, ctx *Context, n int) (int, error) {
			o.enter()
			defer o.exit()
			v, _, err := GetAs[int](ctx.Storage(), "n")
			if err != nil {
				return 0, err
			}
			v += n
			o.local++
			return v, ctx.Storage().Put("n", v)
		}),
		Method("Get", func(o *tObj, ctx *Context, _ struct{}) (int, error) {
			o.enter()
			defer o.exit()
			v, _, err := GetAs[int](ctx.Storage(), "n")
			return v, err
		}),
		Method("Local", func(o *tObj, ctx *Context, _ struct{}) (int, error) {
			return o.local, nil
		}),
		// Do runs the test function registered under the given name.
		Method("Do", func(o *tObj, ctx *Context, name string) (any, error) {
			o.enter()
			defer o.exit()
			f.mu.Lock()
			fn := f.fns[name]
			f.mu.Unlock()
			if fn == nil {
				return nil, errors.New("no test function " + name)
			}
			return fn(ctx)
		}),
	)
	f.rt, f.g = newTestRuntime(t, f.reg, opts)
	return f
}

// fn registers a test function for method Do.
func (f *fixture) fn(name string, fn func(ctx *Context) (any, error)) {
	f.mu.Lock()
	f.fns[name] = fn
	f.mu.Unlock()
}

func (f *fixture) req(name, method string) Request {
	return Request{Class: "T", ID: objid.FromName("T", name), Name: name, Method: method}
}

func (f *fixture) add(name string, n int) (int, error) {
	return callReq[int](context.Background(), f.rt, f.req(name, "Add"), n)
}

func (f *fixture) get(name string) (int, error) {
	return callReq[int](context.Background(), f.rt, f.req(name, "Get"), nil)
}

// do runs test function fn on object name and returns its raw result.
func (f *fixture) do(name, fn string) ([]byte, error) {
	args, err := marshal(fn)
	if err != nil {
		return nil, err
	}
	req := f.req(name, "Do")
	req.Args = args
	return f.rt.Call(context.Background(), req)
}

func (f *fixture) checkNoOverlap() {
	f.t.Helper()
	if n := f.overlaps.Load(); n != 0 {
		f.t.Fatalf("input gate broken: %d handler invocations overlapped", n)
	}
}

func withClient(q Request, client byte, seq uint64) Request {
	q.Client[0] = client
	q.Seq = seq
	return q
}
