package main

import (
	"bytes"
	"testing"
)

// Mistakes on the command line exit 2 before anything is started or dialled.
func TestUsage(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want int
	}{
		{nil, 2},
		{[]string{"bogus"}, 2},
		{[]string{"help"}, 0},
		{[]string{"load", "--workload", "nope"}, 2},
		{[]string{"load", "--callers", "0"}, 2},
		{[]string{"load", "--bogus"}, 2},
		{[]string{"cluster", "--bogus"}, 2},
		{[]string{"failover", "--fault", "reboot"}, 2},
		{[]string{"failover", "--at", "20s", "--time", "20s"}, 2},
		{[]string{"failover", "--callers", "0"}, 2},
	} {
		var out, errb bytes.Buffer
		if got := run(tc.args, &out, &errb); got != tc.want {
			t.Errorf("etcdbench %q = %d, want %d\nstderr: %s", tc.args, got, tc.want, errb.String())
		}
	}
}
