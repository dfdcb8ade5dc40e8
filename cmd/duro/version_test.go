package main

import (
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/duro-db/duro/internal/buildinfo"
)

// `duro --version` (or -v) prints the version, the commit and the Go toolchain, and
// exits 0 without starting anything.
func TestVersion(t *testing.T) {
	t.Parallel()
	b := buildinfo.Get()
	for _, flag := range []string{"--version", "-v"} {
		r := runCLI(t, flag)
		want := "duro version " + b.Version + "\n" +
			"commit:     " + b.Commit + "\n" +
			"go version: " + runtime.Version() + "\n" +
			"platform:   " + runtime.GOOS + "/" + runtime.GOARCH + "\n"
		if r.code != exitOK || r.stderr != "" || r.stdout != want {
			t.Errorf("duro %s:\n%s\nwant stdout:\n%s", flag, r, want)
		}
	}
}

// The release script stamps the version and commit with -ldflags -X; a variable moved
// or renamed would make -X set nothing, silently. Build the way scripts/release.sh does
// and check the binary says what it was given.
func TestVersionFromLdflags(t *testing.T) {
	if testing.Short() {
		t.Skip("builds a binary")
	}
	t.Parallel()
	bin := filepath.Join(t.TempDir(), "duro")
	pkg := "github.com/duro-db/duro/internal/buildinfo"
	ldflags := "-X " + pkg + ".version=v1.2.3-test -X " + pkg + ".commit=0123456789abcdef"
	if out, err := exec.Command("go", "build", "-ldflags", ldflags, "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	out, err := exec.Command(bin, "--version").Output()
	if err != nil {
		t.Fatalf("duro --version: %v", err)
	}
	for _, want := range []string{"duro version v1.2.3-test\n", "commit:     0123456789abcdef\n"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("duro --version printed\n%s\nwant a line %q", out, want)
		}
	}
}
