package duro

import (
	"os"
	"testing"
)

func TestParseFaults(t *testing.T) {
	tests := []struct {
		name               string
		failpoints, unsafe string
		want               faultSwitches
		wantErr            bool
	}{
		{name: "off"},
		{name: "both crashes", failpoints: "crash-before-propose=/a, crash-before-commit=/b",
			want: faultSwitches{crashBeforePropose: "/a", crashBeforeCommit: "/b"}},
		{name: "unsafe", unsafe: "ack-before-commit,stale-reads", want: faultSwitches{ackBeforeCommit: true, staleReads: true}},
		{name: "failpoint without file", failpoints: "crash-before-commit", wantErr: true},
		{name: "unknown failpoint", failpoints: "crash-sometimes=/a", wantErr: true},
		{name: "unknown unsafe switch", unsafe: "ack-whenever", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseFaults(tt.failpoints, tt.unsafe)
			if (err != nil) != tt.wantErr {
				t.Fatalf("err = %v, want error %v", err, tt.wantErr)
			}
			if err == nil && got != tt.want {
				t.Fatalf("got %+v, want %+v", got, tt.want)
			}
		})
	}
}

// A release build has no fault switches: asking for one is an error, not a run without
// the fault; with none asked for, the write path has none.
func TestFaultsNeedTheBuildTag(t *testing.T) {
	if os.Getenv(EnvFailpoints) != "" || os.Getenv(EnvUnsafe) != "" {
		t.Skip("fault switches set in the environment")
	}
	if f, err := loadFaults(); f != nil || err != nil {
		t.Fatalf("loadFaults with nothing set = %+v, %v", f, err)
	}
	t.Setenv(EnvUnsafe, "ack-before-commit")
	f, err := loadFaults()
	if failpointsBuilt {
		if err != nil || f == nil || !f.ackBeforeCommit {
			t.Fatalf("failpoints build: loadFaults = %+v, %v", f, err)
		}
	} else if err == nil {
		t.Fatalf("release build: loadFaults with %s set = %+v, want an error", EnvUnsafe, f)
	}
}
