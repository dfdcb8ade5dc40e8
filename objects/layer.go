package objects

import (
	"sort"
	"strings"

	"github.com/duro-db/duro/fsm"
)

// A layer is a set of blind writes on top of the state below it: what a call (or a
// Transaction inside it) has buffered, or the merged writes of an object's in-flight
// commands. Reading a key walks the layers from the top: the first layer that wrote the key
// decides, a cleared layer (DeleteAll) hides everything below it, and the committed state
// answers when no layer does.
//
// Blind writes make re-applying a layer idempotent (invariant 5): applying the writes W
// over a state that already contains W gives the same result as applying them once. That
// is why an object's view stays right while its committed state moves under it: a command
// may already be applied to the committed state while its layer is still on top.
type layer struct {
	writes   map[string]write
	cleared  bool   // DeleteAll: keys and alarm below this layer are gone
	clearSeq uint64 // in-flight layer: the command that cleared it
	alarm    alarmWrite
	size     int // bytes of keys and values in writes; for the call limits
}

// write is the newest write of a key in a layer: a value, or a deletion.
type write struct {
	val []byte // encoded value; never modified once written (shared with commands)
	del bool
	seq uint64 // in-flight layer: the command that wrote it
}

type alarmKind uint8

const (
	alarmNone   alarmKind = iota // this layer did not touch the alarm
	alarmSet                     // set to at
	alarmDelete                  // deleted
)

type alarmWrite struct {
	kind alarmKind
	at   int64 // unix nanos, for alarmSet
	seq  uint64
}

func newLayer() *layer { return &layer{writes: make(map[string]write)} }

func (l *layer) put(key string, w write) {
	if old, ok := l.writes[key]; ok {
		l.size -= len(key) + len(old.val)
	}
	l.writes[key] = w
	l.size += len(key) + len(w.val)
}

func (l *layer) deleteAll() {
	clear(l.writes)
	l.size = 0
	l.cleared = true
	l.alarm = alarmWrite{} // cleared already hides the alarm below
}

// merge applies child's writes over l: a committed Transaction.
func (l *layer) merge(child *layer) {
	if child.cleared {
		l.deleteAll()
	}
	for k, w := range child.writes {
		l.put(k, w)
	}
	if child.alarm.kind != alarmNone {
		l.alarm = child.alarm
	}
}

// ops turns a call's layer into the operations of its command, in an order that has the
// same effect: DeleteAll first, then the keys in byte order, then the alarm. Deletions
// under a DeleteAll are dropped: the DeleteAll already removed those keys.
func (l *layer) ops() []fsm.Op {
	n := len(l.writes)
	if l.cleared {
		n++
	}
	if l.alarm.kind != alarmNone {
		n++
	}
	if n == 0 {
		return nil
	}
	ops := make([]fsm.Op, 0, n)
	if l.cleared {
		ops = append(ops, fsm.Op{Kind: fsm.OpDeleteAll})
	}
	keys := make([]string, 0, len(l.writes))
	for k := range l.writes {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		w := l.writes[k]
		switch {
		case !w.del:
			ops = append(ops, fsm.Op{Kind: fsm.OpPut, Key: []byte(k), Value: w.val})
		case !l.cleared:
			ops = append(ops, fsm.Op{Kind: fsm.OpDelete, Key: []byte(k)})
		}
	}
	switch l.alarm.kind {
	case alarmSet:
		ops = append(ops, fsm.Op{Kind: fsm.OpSetAlarm, Alarm: l.alarm.at})
	case alarmDelete:
		ops = append(ops, fsm.Op{Kind: fsm.OpDeleteAlarm})
	}
	if len(ops) == 0 {
		// Only deletions under a DeleteAll would give none, and the DeleteAll is an op.
		panic("objects: invariant violated: a layer with writes produced no ops")
	}
	return ops
}

// applyInflight adds the writes of command seq (its call's layer w) to the in-flight
// layer l. Commands are added in the order they were proposed.
func (l *layer) applyInflight(w *layer, seq uint64) {
	if w.cleared {
		l.deleteAll()
		l.clearSeq = seq
	}
	for k, wr := range w.writes {
		wr.seq = seq
		l.writes[k] = wr
	}
	if w.alarm.kind != alarmNone {
		l.alarm = w.alarm
		l.alarm.seq = seq
	}
}

// removeInflight takes command seq out of the in-flight layer once it is applied to the
// committed state. Commands are removed in the order they were added, so whatever a later
// command overwrote (seq differs) stays, and what this command was the last to write goes.
func (l *layer) removeInflight(w *layer, seq uint64) {
	for k := range w.writes {
		if l.writes[k].seq == seq {
			delete(l.writes, k)
		}
	}
	if w.cleared && l.clearSeq == seq {
		l.cleared = false
		l.clearSeq = 0
	}
	if w.alarm.kind != alarmNone && l.alarm.seq == seq {
		l.alarm = alarmWrite{}
	}
}

// inRange reports whether key is selected by o; it must agree exactly with fsm.Tx.List.
func inRange(key string, o *ListOptions) bool {
	return strings.HasPrefix(key, o.Prefix) &&
		(o.Start == "" || key >= o.Start) &&
		(o.StartAfter == "" || key > o.StartAfter) &&
		(o.End == "" || key < o.End)
}
