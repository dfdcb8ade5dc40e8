package fsm

import (
	"bytes"
	"math"
	"slices"
	"testing"
)

type due struct {
	obj byte
	at  int64
}

func dueAlarms(t *testing.T, s *Store, before int64, stopAfter int) []due {
	t.Helper()
	var out []due
	err := s.View(func(tx *Tx) error {
		return tx.DueAlarms(before, func(obj []byte, at int64) bool {
			if len(obj) != IDLen || !bytes.Equal(obj[:IDLen-1], testID(0)[:IDLen-1]) {
				t.Errorf("object %x", obj)
			}
			out = append(out, due{obj[IDLen-1], at})
			return stopAfter == 0 || len(out) < stopAfter
		})
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func TestDueAlarms(t *testing.T) {
	s := openTest(t, Options{})
	set := func(obj byte, ops ...Op) { applyOK(t, s, cmd(testID(obj), ops...)) }
	set(1, setAlarm(300))
	set(2, setAlarm(-5)) // before 1970 still sorts first
	set(3, setAlarm(100))
	set(4, setAlarm(100)) // tie: object ID order
	set(5, setAlarm(math.MinInt64))
	set(6, setAlarm(math.MaxInt64))
	set(7, setAlarm(0))
	set(8, put("k", "v")) // no alarm

	tests := []struct {
		name      string
		before    int64
		stopAfter int
		want      []due
	}{
		{"all but max", math.MaxInt64, 0, []due{{5, math.MinInt64}, {2, -5}, {7, 0}, {3, 100}, {4, 100}, {1, 300}}},
		{"before is exclusive", 100, 0, []due{{5, math.MinInt64}, {2, -5}, {7, 0}}},
		{"just past a tie", 101, 0, []due{{5, math.MinInt64}, {2, -5}, {7, 0}, {3, 100}, {4, 100}}},
		{"none", math.MinInt64, 0, nil},
		{"fn stops", math.MaxInt64, 2, []due{{5, math.MinInt64}, {2, -5}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := dueAlarms(t, s, tt.before, tt.stopAfter); !slices.Equal(got, tt.want) {
				t.Fatalf("DueAlarms(%d) = %v, want %v", tt.before, got, tt.want)
			}
		})
	}

	// Replacing, deleting and DeleteAll keep the index in step with the records.
	set(1, setAlarm(50))
	set(3, deleteAlarm())
	set(4, put("x", "y"), deleteAll())
	set(7, setAlarm(0)) // same time again: no change
	want := []due{{5, math.MinInt64}, {2, -5}, {7, 0}, {1, 50}}
	if got := dueAlarms(t, s, math.MaxInt64, 0); !slices.Equal(got, want) {
		t.Fatalf("after changes: %v, want %v", got, want)
	}
	checkShape(t, s)
	if err := s.View(func(tx *Tx) error {
		if _, ok := tx.Alarm(testID(4)); ok {
			t.Error("DeleteAll kept the alarm")
		}
		if at, ok := tx.Alarm(testID(1)); !ok || at != 50 {
			t.Errorf("Alarm(1) = %d, %v", at, ok)
		}
		if _, ok := tx.Alarm(testID(8)); ok {
			t.Error("object 8 has an alarm")
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
}
