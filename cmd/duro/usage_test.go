package main

import (
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/duro-db/duro/internal/framing"
)

// Mistakes on the command line are reported as one line on stderr, with exit status 2
// (exitUsage), and nothing is started or dialled: the endpoints named here have nothing
// listening, so a command that went on to the network would exit 75 instead.
func TestUsageErrors(t *testing.T) {
	t.Parallel()
	nobody := freeAddr(t) // an address with no node, for --endpoints
	// server cases listen on an address already taken: should one get past the checks of
	// its flags, it fails to bind at once (exit 1) instead of serving.
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { busy.Close() }) // not defer: the subtests run after this function returns
	peers3 := "n1=127.0.0.1:1,n2=127.0.0.1:2,n3=127.0.0.1:3"
	server := func(t *testing.T, args ...string) []string {
		return append([]string{"server", "--data-dir", t.TempDir(), "--http", "", "--listen", busy.Addr().String()}, args...)
	}
	tests := []struct {
		name string
		args func(t *testing.T) []string
		want string // in the line on stderr
	}{
		{"unknown global flag", fixed("--bogus"), "bogus"},
		{"unknown command", fixed("bogus"), `unknown command "bogus"`},
		{"unknown flag of a command", fixed("call", "--bogus", "Counter", "x", "Add"), "bogus"},
		{"call without arguments", fixed("call", "-e", nobody), "call wants CLASS NAME METHOD"},
		{"call with too few arguments", fixed("call", "-e", nobody, "Counter", "x"), "got 2 argument(s)"},
		{"call with too many arguments", fixed("call", "-e", nobody, "Counter", "x", "Add", "1", "2"), "got 5 argument(s)"},
		{"call --id with a NAME too", fixed("call", "-e", nobody, "--id", strings.Repeat("ab", 32), "Counter", "x", "Add", "1"), "got 4 argument(s)"},
		{"call with invalid JSON", fixed("call", "-e", nobody, "Counter", "x", "Add", "{1"), "not valid JSON"},
		{"call with JSON-ARGS from a missing file", func(t *testing.T) []string {
			return []string{"call", "-e", nobody, "Counter", "x", "Add", "@" + filepath.Join(t.TempDir(), "nope.json")}
		}, "JSON-ARGS: open "},
		{"call with JSON-ARGS from a directory", func(t *testing.T) []string {
			return []string{"call", "-e", nobody, "Counter", "x", "Add", "@" + t.TempDir()}
		}, "is a directory"},
		{"call with JSON-ARGS from a file of invalid JSON", func(t *testing.T) []string {
			return []string{"call", "-e", nobody, "Counter", "x", "Add", "@" + tempFile(t, "args.json", "{1")}
		}, "args.json is not valid JSON"},
		{"call with JSON-ARGS from an empty file", func(t *testing.T) []string {
			return []string{"call", "-e", nobody, "Counter", "x", "Add", "@" + tempFile(t, "empty.json", "\n")}
		}, "empty.json is empty"},
		{"call with JSON-ARGS from a file larger than a call", func(t *testing.T) []string {
			return []string{"call", "-e", nobody, "Counter", "x", "Add", "@" + tempFile(t, "big.json", strings.Repeat(" ", framing.MaxFrameSize+1))}
		}, "more than 4 MiB"},
		{"call with JSON-ARGS from empty standard input", fixed("call", "-e", nobody, "Counter", "x", "Add", "-"), "standard input is empty"},
		{"call with a bad --id", fixed("call", "-e", nobody, "--id", "zz", "Counter", "Get"), "--id"},
		{"call with a bad --timeout", fixed("call", "--timeout", "soon", "Counter", "x", "Get"), "timeout"},
		{"server with an argument", func(t *testing.T) []string { return server(t, "--id", "n1", "--peers", peers3, "extra") }, `"extra"`},
		{"server without --id", func(t *testing.T) []string { return server(t, "--peers", peers3) }, "--id is required"},
		{"server without --peers", func(t *testing.T) []string { return server(t, "--id", "n1") }, "--peers is required"},
		{"server with --peers not naming it", func(t *testing.T) []string { return server(t, "--id", "n9", "--peers", peers3) }, `"n9"`},
		{"server with invalid --peers", func(t *testing.T) []string { return server(t, "--id", "n1", "--peers", "n1@127.0.0.1:1") }, "id=host:port"},
		{"server with a peer without port", func(t *testing.T) []string { return server(t, "--id", "n1", "--peers", "n1=localhost") }, "n1=localhost"},
		{"server with a peer named twice", func(t *testing.T) []string {
			return server(t, "--id", "n1", "--peers", "n1=127.0.0.1:1,n1=127.0.0.1:2,n3=127.0.0.1:3")
		}, "twice"},
		{"server with a bad --log-level", func(t *testing.T) []string { return server(t, "--id", "n1", "--peers", peers3, "--log-level", "loud") }, "--log-level"},
		{"server with a bad --log-format", func(t *testing.T) []string { return server(t, "--id", "n1", "--peers", peers3, "--log-format", "xml") }, "--log-format"},
		{"server with --groups 0", func(t *testing.T) []string { return server(t, "--id", "n1", "--peers", peers3, "--groups", "0") }, "groups"},
		{"server with --groups -1", func(t *testing.T) []string { return server(t, "--id", "n1", "--peers", peers3, "--groups", "-1") }, "groups"},
		{"server with --groups abc", func(t *testing.T) []string { return server(t, "--id", "n1", "--peers", peers3, "--groups", "abc") }, "groups"},
		{"server with 4 replicas", func(t *testing.T) []string { return server(t, "--id", "n1", "--peers", peers3, "--replicas", "4") }, "replicas"},
		{"health with an argument", fixed("health", "now"), `"now"`},
		{"health with a bad --http", fixed("health", "--http", "127.0.0.1"), "--http"},
		{"dev with an argument", fixed("dev", "now"), `"now"`},
		{"dev with --base-port out of range", fixed("dev", "--base-port", "65500"), "--base-port"},
		{"dev with a bad --log-level", fixed("dev", "--log-level", "loud", "--base-port", "1000"), "--log-level"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			args := tc.args(t)
			r := runCLI(t, args...)
			if r.code != exitUsage {
				t.Errorf("exit status %d, want %d (usage)", r.code, exitUsage)
			}
			if r.stdout != "" {
				t.Errorf("stdout not empty")
			}
			if !strings.Contains(r.stderr, tc.want) {
				t.Errorf("stderr lacks %q", tc.want)
			}
			wantOneLine(t, r)
			if t.Failed() {
				t.Logf("duro %s\n%s", strings.Join(args, " "), r)
			}
		})
	}
}

func fixed(args ...string) func(*testing.T) []string {
	return func(*testing.T) []string { return args }
}

// tempFile writes content to a new file called name and returns its path.
func tempFile(t *testing.T, name, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// Help goes to stdout with status 0; it is the one place the usage text appears.
func TestHelp(t *testing.T) {
	t.Parallel()
	for _, args := range [][]string{{"--help"}, {}, {"call", "--help"}, {"server", "--help"}, {"dev", "-h"}} {
		r := runCLI(t, args...)
		if r.code != exitOK || r.stderr != "" || !strings.Contains(r.stdout, "USAGE") {
			t.Errorf("duro %s:\n%s", strings.Join(args, " "), r)
		}
	}
}
