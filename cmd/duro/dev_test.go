package main

import (
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/duro-db/duro/internal/ports"
)

// duro dev --once starts a cluster, makes its first call, prints the result and exits 0.
func TestDevOnce(t *testing.T) {
	t.Parallel()
	base := freeBasePort(t)
	r := runCLI(t, "dev", "--once", "--base-port", strconv.Itoa(base), "--groups", "2")
	if r.code != exitOK {
		t.Fatalf("duro dev --once:\n%s", r)
	}
	for _, want := range []string{
		`Called Counter "hello" Add 1 -> 1`,
		"n1  127.0.0.1:" + strconv.Itoa(base+1) + "  http://127.0.0.1:" + strconv.Itoa(base+81),
		"n3  127.0.0.1:" + strconv.Itoa(base+3),
		"duro dev: stopping",
	} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("stdout lacks %q:\n%s", want, r)
		}
	}
	// Its nodes have stopped: every port is free again.
	if !ports.Available(base+1, base+2, base+3, base+81, base+82, base+83) {
		t.Errorf("ports of the stopped dev cluster still in use")
	}
}

// duro dev runs until Ctrl-C and then exits 0; the commands it prints to try work as
// pasted.
func TestDevUntilInterrupt(t *testing.T) {
	t.Parallel()
	base := freeBasePort(t)
	p := startProc(t, nil, "dev", "--base-port", strconv.Itoa(base), "--groups", "2")
	p.waitStdout(t, "Ctrl-C stops the cluster.", 30*time.Second)

	var call []string
	for _, line := range strings.Split(p.stdout.String(), "\n") {
		if f := strings.Fields(line); len(f) > 2 && f[0] == "duro" && f[1] == "call" {
			call = f[1:]
		}
	}
	if call == nil {
		t.Fatalf("no `duro call` to try in the output\n%s", p)
	}
	r := runCLI(t, call...)
	if r.code != exitOK || r.stdout != "42\n" { // the first call added 1; this one adds 41
		t.Errorf("duro %s (as printed by duro dev): want 42\n%s", strings.Join(call, " "), r)
	}

	if err := p.signalAndWait(t, syscall.SIGINT, 10*time.Second); err != nil {
		t.Fatalf("exit after SIGINT: %v\n%s", err, p)
	}
	if !strings.Contains(p.stdout.String(), "duro dev: stopping") {
		t.Errorf("no stopping message\n%s", p)
	}
}
