package client

import (
	"os/exec"
	"strings"
	"testing"
)

// A program that only calls a cluster must not carry the server: no consensus library,
// no node packages. The SDK reaches the node through internal/framing and internal/wire,
// which import neither; an import of transport or raftgroup would bring hashicorp/raft
// back unnoticed, and this test fails.
func TestClientDoesNotLinkRaft(t *testing.T) {
	gocmd, err := exec.LookPath("go")
	if err != nil {
		t.Skip("no go command on PATH to list the package's dependencies")
	}
	out, err := exec.Command(gocmd, "list", "-deps", ".").Output()
	if err != nil {
		t.Fatalf("go list -deps: %v", err)
	}
	for _, dep := range strings.Fields(string(out)) {
		for _, banned := range []string{"github.com/hashicorp/raft", "github.com/duro-db/duro/transport", "github.com/duro-db/duro/raftgroup"} {
			if dep == banned || strings.HasPrefix(dep, banned+"/") {
				t.Errorf("the client links %s", dep)
			}
		}
	}
}
