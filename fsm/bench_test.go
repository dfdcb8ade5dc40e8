package fsm

import (
	"fmt"
	"log/slog"
	"math/rand/v2"
	"path/filepath"
	"testing"

	"github.com/hashicorp/raft"
)

// BenchmarkApplyBatch applies 1 KiB single-put commands, fsync on, in raft batches of
// several sizes. One op is one log entry. A commit's two fsyncs are shared by the entries
// it gathers: up to 128, across batches (deferred commit, DESIGN.md).
//
//	go test -run XXX -bench ApplyBatch -benchtime 2000x ./fsm
func BenchmarkApplyBatch(b *testing.B) {
	for _, batch := range []int{1, 16, 64} {
		for _, dedup := range []bool{false, true} {
			name := fmt.Sprintf("batch=%d", batch)
			if dedup {
				name += "/dedup"
			}
			b.Run(name, func(b *testing.B) { benchApply(b, batch, dedup) })
		}
	}
}

func benchApply(b *testing.B, batch int, dedup bool) {
	s, err := Open(filepath.Join(b.TempDir(), "state.db"), Options{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	r := rand.New(rand.NewPCG(1, 2))
	value := make([]byte, 1024)
	for i := range value {
		value[i] = byte(r.IntN(256))
	}
	// Encode every entry up front: the benchmark measures applying, not encoding.
	logs := make([]*raft.Log, b.N)
	for i := range logs {
		c := &Command{
			Object: testID(byte(r.IntN(256))),
			Ops:    []Op{{Kind: OpPut, Key: fmt.Appendf(nil, "key-%08d", i), Value: value}},
			Time:   int64(i),
		}
		if dedup {
			c.Client, c.Seq, c.Ack, c.Result = testClient(byte(i%8)), uint64(i+1), uint64(i+1), []byte("ok")
		}
		data, err := EncodeCommand(c)
		if err != nil {
			b.Fatal(err)
		}
		logs[i] = &raft.Log{Index: uint64(i + 1), Type: raft.LogCommand, Data: data}
	}
	b.ReportAllocs()
	b.SetBytes(int64(len(value)))
	b.ResetTimer()
	for i := 0; i < len(logs); i += batch {
		for _, resp := range s.ApplyBatch(logs[i:min(i+batch, len(logs))]) {
			if res := resp.(*Result); res.Err != nil {
				b.Fatal(res.Err)
			}
		}
	}
	b.StopTimer()
	if s.AppliedIndex() != uint64(b.N) {
		b.Fatalf("applied %d of %d", s.AppliedIndex(), b.N)
	}
}
