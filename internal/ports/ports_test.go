package ports

import (
	"net"
	"strconv"
	"testing"
)

func TestFreeIsBelowTheEphemeralRangeAndBindable(t *testing.T) {
	addrs, err := Free(6)
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for _, a := range addrs {
		_, p, _ := net.SplitHostPort(a)
		port, _ := strconv.Atoi(p)
		if port < low || port >= ephemeralLow() || seen[a] {
			t.Fatalf("address %s: outside [%d, %d) or repeated", a, low, ephemeralLow())
		}
		seen[a] = true
		ln, err := net.Listen("tcp", a)
		if err != nil {
			t.Fatalf("cannot bind %s: %v", a, err)
		}
		ln.Close()
	}
}

func TestFreeBaseSkipsABusyPort(t *testing.T) {
	base, err := FreeBase(0, 81)
	if err != nil {
		t.Fatal(err)
	}
	busy, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(base+81)))
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	if allFree(base, []int{0, 81}) {
		t.Fatal("a range with a bound port reported free")
	}
	if _, err := FreeBase(1000); err == nil {
		t.Fatal("offset 1000 accepted")
	}
}
