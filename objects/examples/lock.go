package examples

import (
	"errors"
	"time"

	"github.com/duro-db/duro/objects"
)

// Lock is a lease: one owner at a time, until it releases or its TTL passes. Every new
// acquisition gets a larger fencing token, so a resource guarded by the lock can refuse a
// former owner whose lease expired (it presents a smaller token).
type Lock struct{}

// AcquireArgs are the arguments of Lock.Acquire.
type AcquireArgs struct {
	Owner string `json:"owner"`
	TTLms int64  `json:"ttl_ms"` // lease length in milliseconds, > 0
}

// AcquireResult says whether Owner holds the lock, with its fencing token, or who does.
type AcquireResult struct {
	OK     bool   `json:"ok"`
	Token  uint64 `json:"token"`  // the holder's fencing token
	Holder string `json:"holder"` // the current holder
}

// ReleaseArgs are the arguments of Lock.Release.
type ReleaseArgs struct {
	Owner string `json:"owner"`
	Token uint64 `json:"token"`
}

// ReleaseResult says whether the lock was released.
type ReleaseResult struct {
	OK bool `json:"ok"`
}

type lease struct {
	Holder  string `json:"holder"`
	Token   uint64 `json:"token"`
	Expires int64  `json:"expires"` // unix nanos
	// Last is the last token handed out; it survives releases so tokens only grow.
	Last uint64 `json:"last"`
}

// Acquire takes the lock for in.Owner if it is free or expired. An owner that already
// holds it renews its lease and keeps its token.
func (*Lock) Acquire(ctx *objects.Context, in AcquireArgs) (AcquireResult, error) {
	if in.Owner == "" || in.TTLms <= 0 {
		return AcquireResult{}, errors.New("owner must be set and ttl_ms > 0")
	}
	now := ctx.Now().UnixNano()
	l, _, err := objects.GetAs[lease](ctx.Storage(), "lease")
	if err != nil {
		return AcquireResult{}, err
	}
	held := l.Holder != "" && now < l.Expires
	if held && l.Holder != in.Owner {
		return AcquireResult{OK: false, Token: l.Token, Holder: l.Holder}, nil
	}
	if !held {
		l.Last++
		l.Holder, l.Token = in.Owner, l.Last
	}
	l.Expires = now + (time.Duration(in.TTLms) * time.Millisecond).Nanoseconds()
	return AcquireResult{OK: true, Token: l.Token, Holder: l.Holder}, ctx.Storage().Put("lease", l)
}

// Release frees the lock if in.Owner holds it with in.Token and the lease has not expired.
func (*Lock) Release(ctx *objects.Context, in ReleaseArgs) (ReleaseResult, error) {
	l, _, err := objects.GetAs[lease](ctx.Storage(), "lease")
	if err != nil {
		return ReleaseResult{}, err
	}
	if l.Holder == "" || l.Holder != in.Owner || l.Token != in.Token || ctx.Now().UnixNano() >= l.Expires {
		return ReleaseResult{OK: false}, nil
	}
	l.Holder, l.Token, l.Expires = "", 0, 0
	return ReleaseResult{OK: true}, ctx.Storage().Put("lease", l)
}

func registerLock(r *objects.Registry) {
	objects.RegisterIn(r, "Lock", func() *Lock { return new(Lock) },
		objects.Method("Acquire", (*Lock).Acquire),
		objects.Method("Release", (*Lock).Release),
	)
}
