package fsm

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

// format1Options are the options testdata/format1.db was written with (and must be opened
// with: they decide dedup pruning).
var format1Options = Options{DedupPerClient: 8, DedupTTL: 20 * time.Second}

// format1Log is the log testdata/format1.db holds, applied in batches of format1Batch
// entries. It has every shape of state: an object whose keys outgrow an inline bucket,
// keys that are prefixes of one another and bytes 0x00 and 0xff in keys, an empty value,
// an object with a record and no keys, alarms, a batch entry, dedup entries expired and
// not, acknowledged and not, and a client left pending.
//
// The file was written by the format-1 code (commit 7b00d92) with this same function; see
// testdata/README. Do not change it: the fixture would no longer match.
func format1Log(t testing.TB) [][]byte {
	t.Helper()
	var out [][]byte
	add := func(c *Command) { out = append(out, mustEncode(t, c)) }
	big := cmd(testID(100))
	for i := range 64 {
		big.Ops = append(big.Ops, put(fmt.Sprintf("key-%03d", i), strings.Repeat("v", 100)))
	}
	add(big)
	add(cmd(testID(101), put("a", "1"), put("a\x00", "2"), put("ab", "3"), put("\xff\xff", "4"),
		put("\x00", ""), setAlarm(5e9)))
	add(cmd(testID(102), put("gone", "x"), setAlarm(7e9)))
	add(cmd(testID(102), del("gone")))
	add(cmd(testID(103), put("x", "y"), setAlarm(1)))
	add(cmd(testID(103), deleteAll(), put("z", "w")))
	var cmds [][]byte
	for i := range 3 {
		cmds = append(cmds, mustEncode(t, clientCmd(testID(104), testClient(20), uint64(i+1), 0,
			fmt.Sprint("batched ", i), put(fmt.Sprint("b", i), "v"))))
	}
	batch, err := EncodeBatch(cmds)
	if err != nil {
		t.Fatal(err)
	}
	out = append(out, batch)
	out = append(out, workload(t, 11, 400)...)
	// Client 9 leaves eight calls unanswered, then acknowledges them all at once: more
	// than one command's pruning, so it is left pending.
	for seq := uint64(1); seq <= 9; seq++ {
		ack := uint64(0)
		if seq == 9 {
			ack = 9
		}
		add(clientCmd(testID(105), testClient(9), seq, ack, fmt.Sprint("call ", seq), put("n", fmt.Sprint(seq))))
	}
	return out
}

const format1Batch = 7
