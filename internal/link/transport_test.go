package link

import (
	"testing"

	"github.com/hashicorp/raft"

	"github.com/duro-db/duro/internal/framing"
)

func TestFitsOneFrame(t *testing.T) {
	small := sampleAppend()
	if !fitsOneFrame(small) {
		t.Fatal("a small request does not fit one frame")
	}
	big := sampleAppend()
	big.Entries = append(big.Entries, &raft.Log{Index: 45, Data: make([]byte, framing.MaxFrameSize)})
	if fitsOneFrame(big) {
		t.Fatal("a request larger than a frame fits one")
	}
	// And the estimate is never below the real size.
	if n := len(appendRequestFrame(nil, 1<<60, 1<<40, small)); n > framing.MaxFrameSize {
		t.Fatalf("sample request encodes to %d bytes", n)
	}
}

func TestIsHeartbeat(t *testing.T) {
	hb := &raft.AppendEntriesRequest{RPCHeader: raft.RPCHeader{Addr: []byte("a:1")}, Term: 3}
	if !IsHeartbeat(hb) {
		t.Fatal("a heartbeat is not one")
	}
	for name, mod := range map[string]func(*raft.AppendEntriesRequest){
		"no term":      func(a *raft.AppendEntriesRequest) { a.Term = 0 },
		"no leader":    func(a *raft.AppendEntriesRequest) { a.RPCHeader.Addr = nil },
		"prev entry":   func(a *raft.AppendEntriesRequest) { a.PrevLogEntry = 1 },
		"prev term":    func(a *raft.AppendEntriesRequest) { a.PrevLogTerm = 1 },
		"entries":      func(a *raft.AppendEntriesRequest) { a.Entries = []*raft.Log{{Index: 1}} },
		"commit index": func(a *raft.AppendEntriesRequest) { a.LeaderCommitIndex = 1 },
	} {
		a := *hb
		mod(&a)
		if IsHeartbeat(&a) {
			t.Errorf("%s: taken for a heartbeat", name)
		}
	}
}
