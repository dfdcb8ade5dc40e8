package examples

import (
	"errors"
	"fmt"
	"time"

	"github.com/duro-db/duro/objects"
)

// Batcher buffers items and flushes them as one batch when it holds MaxItems or when
// FlushAfter has passed since the first item of the batch was added, whichever comes
// first. The time-based flush is the object's alarm, so a batch is flushed on time even
// if no call comes and the node that took the items dies.
type Batcher struct{}

// BatcherConfig are the arguments of Batcher.Configure.
type BatcherConfig struct {
	MaxItems     int   `json:"max_items"`      // flush when this many are buffered; > 0
	FlushAfterMs int64 `json:"flush_after_ms"` // flush this long after a batch's first item; > 0
}

// Batch is a flushed batch.
type Batch struct {
	Seq     uint64   `json:"seq"`     // 1, 2, ...: batches in flush order
	Items   []string `json:"items"`   // in the order they were added
	Flushed int64    `json:"flushed"` // unix nanos
	ByAlarm bool     `json:"by_alarm"`
}

// Batcher's storage: "config", "buf/<n>" the buffered items (n zero-padded, so key order
// is arrival order), "nbuf" their count, "next" the next item number, "batches" the
// number of batches flushed, "batch/<seq>" each batch.
const (
	batcherBuf   = "buf/"
	batcherBatch = "batch/"
)

var defaultBatcherConfig = BatcherConfig{MaxItems: 100, FlushAfterMs: 1000}

// Configure sets the flush thresholds; they apply from the next item on.
func (*Batcher) Configure(ctx *objects.Context, in BatcherConfig) (bool, error) {
	if in.MaxItems <= 0 || in.MaxItems > objects.MaxBatchKeys || in.FlushAfterMs <= 0 {
		return false, fmt.Errorf("max_items must be 1..%d and flush_after_ms > 0", objects.MaxBatchKeys)
	}
	return true, ctx.Storage().Put("config", in)
}

// Add buffers an item and returns the number of items buffered after it (0 if the add
// filled the batch and flushed it).
func (*Batcher) Add(ctx *objects.Context, item string) (int, error) {
	st := ctx.Storage()
	cfg, ok, err := objects.GetAs[BatcherConfig](st, "config")
	if err != nil {
		return 0, err
	}
	if !ok {
		cfg = defaultBatcherConfig
	}
	next, _, err := objects.GetAs[uint64](st, "next")
	if err != nil {
		return 0, err
	}
	n, _, err := objects.GetAs[int](st, "nbuf")
	if err != nil {
		return 0, err
	}
	if err := st.PutMany(map[string]any{fmt.Sprintf("%s%020d", batcherBuf, next): item, "next": next + 1, "nbuf": n + 1}); err != nil {
		return 0, err
	}
	if n+1 >= cfg.MaxItems {
		return 0, flush(ctx, false)
	}
	if n == 0 {
		// The batch's first item starts its clock.
		return 1, st.SetAlarm(ctx.Now().Add(time.Duration(cfg.FlushAfterMs) * time.Millisecond))
	}
	return n + 1, nil
}

// Batches returns the flushed batches with Seq >= from, oldest first.
func (*Batcher) Batches(ctx *objects.Context, from uint64) ([]Batch, error) {
	es, err := objects.ListAs[Batch](ctx.Storage(), objects.ListOptions{
		Prefix: batcherBatch, Start: fmt.Sprintf("%s%020d", batcherBatch, from),
	})
	if err != nil {
		return nil, err
	}
	out := make([]Batch, len(es))
	for i, e := range es {
		out[i] = e.Value
	}
	return out, nil
}

// Alarm flushes the batch whose time is up.
func (*Batcher) Alarm(ctx *objects.Context, _ objects.AlarmInfo) error {
	return flush(ctx, true)
}

// flush moves the buffered items into a new batch and stops the batch's clock.
func flush(ctx *objects.Context, byAlarm bool) error {
	st := ctx.Storage()
	items, err := objects.ListAs[string](st, objects.ListOptions{Prefix: batcherBuf})
	if err != nil {
		return err
	}
	if len(items) == 0 {
		return st.DeleteAlarm()
	}
	b := Batch{Flushed: ctx.Now().UnixNano(), ByAlarm: byAlarm}
	keys := make([]string, len(items))
	for i, e := range items {
		keys[i] = e.Key
		b.Items = append(b.Items, e.Value)
	}
	seq, _, err := objects.GetAs[uint64](st, "batches")
	if err != nil {
		return err
	}
	b.Seq = seq + 1
	if len(keys) > objects.MaxBatchKeys {
		return errors.New("batcher: more items buffered than one flush can delete")
	}
	if _, err := st.DeleteMany(keys); err != nil {
		return err
	}
	if err := st.PutMany(map[string]any{fmt.Sprintf("%s%020d", batcherBatch, b.Seq): b, "batches": b.Seq, "nbuf": 0}); err != nil {
		return err
	}
	return st.DeleteAlarm()
}

func registerBatcher(r *objects.Registry) {
	objects.RegisterIn(r, "Batcher", func() *Batcher { return new(Batcher) },
		objects.Method("Configure", (*Batcher).Configure),
		objects.Method("Add", (*Batcher).Add),
		objects.Method("Batches", (*Batcher).Batches),
	)
}
