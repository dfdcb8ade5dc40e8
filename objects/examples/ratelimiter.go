package examples

import (
	"errors"
	"math"
	"time"

	"github.com/duro-db/duro/objects"
)

// RateLimiter is a token bucket: it holds up to Burst tokens and refills at Rate tokens per
// second. Unconfigured, it allows 10 per second with bursts of 10.
type RateLimiter struct{}

// Default configuration of a RateLimiter.
const (
	DefaultRate  = 10
	DefaultBurst = 10
)

// ConfigureArgs are the arguments of RateLimiter.Configure.
type ConfigureArgs struct {
	Rate  float64 `json:"rate"`  // tokens per second, > 0
	Burst float64 `json:"burst"` // bucket size, >= 1
}

// TakeArgs are the arguments of RateLimiter.Take.
type TakeArgs struct {
	N float64 `json:"n"` // tokens wanted; 0 means 1
}

// TakeResult says whether the tokens were granted and how many remain.
type TakeResult struct {
	Allowed   bool    `json:"allowed"`
	Remaining float64 `json:"remaining"`
}

// bucket is the stored state.
type bucket struct {
	Rate   float64 `json:"rate"`
	Burst  float64 `json:"burst"`
	Tokens float64 `json:"tokens"`
	At     int64   `json:"at"` // unix nanos of the last refill
}

var errBadConfig = errors.New("rate must be > 0 and burst >= 1")

// Configure sets rate and burst; the bucket starts full.
func (*RateLimiter) Configure(ctx *objects.Context, in ConfigureArgs) (struct{}, error) {
	if !(in.Rate > 0) || !(in.Burst >= 1) || math.IsInf(in.Rate, 0) || math.IsInf(in.Burst, 0) {
		return struct{}{}, errBadConfig
	}
	b := bucket{Rate: in.Rate, Burst: in.Burst, Tokens: in.Burst, At: ctx.Now().UnixNano()}
	return struct{}{}, ctx.Storage().Put("bucket", b)
}

// Take takes N tokens if the bucket holds them.
func (*RateLimiter) Take(ctx *objects.Context, in TakeArgs) (TakeResult, error) {
	if in.N == 0 {
		in.N = 1
	}
	if !(in.N > 0) {
		return TakeResult{}, errors.New("n must be positive")
	}
	now := ctx.Now().UnixNano()
	b, ok, err := objects.GetAs[bucket](ctx.Storage(), "bucket")
	if err != nil {
		return TakeResult{}, err
	}
	if !ok {
		b = bucket{Rate: DefaultRate, Burst: DefaultBurst, Tokens: DefaultBurst, At: now}
	}
	if now > b.At { // a clock that steps back refills nothing
		b.Tokens = math.Min(b.Burst, b.Tokens+b.Rate*time.Duration(now-b.At).Seconds())
		b.At = now
	}
	allowed := b.Tokens >= in.N
	if allowed {
		b.Tokens -= in.N
	}
	return TakeResult{Allowed: allowed, Remaining: b.Tokens}, ctx.Storage().Put("bucket", b)
}

func registerRateLimiter(r *objects.Registry) {
	objects.RegisterIn(r, "RateLimiter", func() *RateLimiter { return new(RateLimiter) },
		objects.Method("Configure", (*RateLimiter).Configure),
		objects.Method("Take", (*RateLimiter).Take),
	)
}
