// Package examples holds the classes compiled into the stock duro binary, each a small,
// complete durable object showing one pattern:
//
//   - Counter: an integer with Add and Get.
//   - Register: a string value with Get, Put and CompareAndSet (a linearizable register).
//   - RateLimiter: a token bucket, configured with Configure, consumed with Take.
//   - Lock: a lease with a fencing token: Acquire, Release.
//   - ChatLog: an append-only log read in ranges, keyed so byte order is sequence order.
//
// All state lives in Storage, so every class survives restarts, eviction and leader
// changes; the in-memory object holds nothing. Time comes from Context.Now.
package examples

import "github.com/duro-db/duro/objects"

// RegisterAll registers every example class in r.
func RegisterAll(r *objects.Registry) {
	registerCounter(r)
	registerRegister(r)
	registerRateLimiter(r)
	registerLock(r)
	registerChatLog(r)
}
