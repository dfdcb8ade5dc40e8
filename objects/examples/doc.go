// Package examples holds the classes compiled into the stock duro binary, each a small,
// complete durable object showing one pattern:
//
//   - Counter: an integer with Add and Get.
//   - Register: a string value with Get, Put and CompareAndSet (a linearizable register).
//   - RateLimiter: a token bucket, configured with Configure, consumed with Take.
//   - Lock: a lease with a fencing token: Acquire, Release.
//   - ChatLog: an append-only log read in ranges, keyed so byte order is sequence order.
//   - Set: a grow-only set of integers (Add, Read); the Jepsen harness's set workload.
//   - Bank: accounts in one object moved between by Transfer, whose total never changes;
//     the Jepsen harness's bank workload.
//   - Session: data with a time to live renewed by each call, deleted by an alarm on expiry.
//   - Batcher: buffers items and flushes them when full or when its alarm fires.
//   - Reminder: one reminder delivered at least once and never early, by an alarm whose
//     first deliveries can be told to fail (a flaky webhook); the Jepsen alarms workload.
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
	registerSet(r)
	registerBank(r)
	RegisterAlarmExamples(r)
	registerReminder(r)
}
