package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/duro-db/duro/internal/objid"
)

// duro call prints the result as JSON on stdout; failures are one line on stderr with an
// exit status that says whether to retry.
func TestCall(t *testing.T) {
	t.Parallel()
	c := startCluster(t, 3, 2)
	e := []string{"call", "--endpoints", c.endpoints}
	// The IDs the SDK derives from these names, for --id.
	counterID := objid.FromName("Counter", "cli-test").String()
	registerID := objid.FromName("Register", "cli-test").String()

	// In order: later steps read what earlier ones wrote.
	steps := []struct {
		name       string
		args       []string
		wantCode   int
		wantStdout string // exact, for successes
		wantErr    string // in the one line on stderr, for failures
	}{
		{"add", []string{"Counter", "cli-test", "Add", "5"}, exitOK, "5\n", ""},
		{"add again", []string{"Counter", "cli-test", "Add", "2"}, exitOK, "7\n", ""},
		{"default arguments are {}", []string{"Counter", "cli-test", "Get"}, exitOK, "7\n", ""},
		{"by --id", []string{"--id", counterID, "Counter", "Get"}, exitOK, "7\n", ""},
		{"struct arguments and result", []string{"Register", "cli-test", "Put", `{"value": "blue"}`}, exitOK, `{"value":"blue"}` + "\n", ""},
		{"unknown class", []string{"Nope", "cli-test", "Get"}, exitFailed, "", `no such class: "Nope"; the classes are `},
		{"unknown method", []string{"Counter", "cli-test", "Nope"}, exitFailed, "", "no such method: Counter.Nope; the methods of Counter are Add"},
		{"a class typo", []string{"Conter", "cli-test", "Get"}, exitFailed, "", `no such class: "Conter"; did you mean "Counter"?`},
		{"a method typo", []string{"Counter", "cli-test", "Ad", "1"}, exitFailed, "", "no such method: Counter.Ad; did you mean Counter.Add?"},
		{"arguments of the wrong type", []string{"Counter", "cli-test", "Add", `"five"`}, exitFailed, "", "bad argument"},
		{"handler error", []string{"ChatLog", "room", "Read", `{"limit": -1}`}, exitFailed, "", "handler error: limit must be"},
		{"--id of another class", []string{"--id", registerID, "Counter", "Get"}, exitUsage, "", "not an ID of class"},
		{"--id not hex", []string{"--id", strings.Repeat("z", 64), "Counter", "Get"}, exitUsage, "", "--id"},
	}
	for _, s := range steps {
		r := runCLI(t, append(e, s.args...)...)
		if r.code != s.wantCode {
			t.Errorf("%s: exit %d, want %d\n%s", s.name, r.code, s.wantCode, r)
			continue
		}
		if s.wantCode == exitOK {
			if r.stdout != s.wantStdout || r.stderr != "" {
				t.Errorf("%s: want stdout %q and no stderr\n%s", s.name, s.wantStdout, r)
			}
			continue
		}
		if r.stdout != "" || strings.Count(r.stderr, s.wantErr) != 1 || strings.Contains(r.stderr, "objects:") {
			t.Errorf("%s: want empty stdout and %q once on stderr, in the client's words\n%s", s.name, s.wantErr, r)
		}
		wantOneLine(t, r)
	}

	// JSON-ARGS from a file (@FILE) and from standard input (-): a value near the storage
	// limit, too large to pass comfortably as one argument, arrives whole.
	big := strings.Repeat("ab", 60<<10) // 120 KiB
	args := `{"value": "` + big + `"}`
	file := filepath.Join(t.TempDir(), "args.json")
	if err := os.WriteFile(file, []byte(args), 0o600); err != nil {
		t.Fatal(err)
	}
	want := `{"value":"` + big + `"}` + "\n"
	for _, how := range []struct {
		name string
		r    result
	}{
		{"from-file", runCLI(t, append(e, "Register", "from-file", "Put", "@"+file)...)},
		{"from-stdin", runCLIWithStdin(t, args, append(e, "Register", "from-stdin", "Put", "-")...)},
	} {
		if how.r.code != exitOK || how.r.stdout != want {
			t.Errorf("Put %s: exit %d, stderr %q, %d bytes out; want the value back", how.name, how.r.code, how.r.stderr, len(how.r.stdout))
			continue
		}
		if r := runCLI(t, append(e, "Register", how.name, "Get")...); r.code != exitOK || r.stdout != want {
			t.Errorf("Get %s: exit %d, stderr %q, %d bytes out; want what Put stored", how.name, r.code, r.stderr, len(r.stdout))
		}
	}
}

// With no node to reach, duro call exits 75 (EX_TEMPFAIL): trying again later may work.
// The one line names each endpoint once, with why it failed.
func TestCallNoNode(t *testing.T) {
	t.Parallel()
	nobody, nobodyElse := freeAddr(t), freeAddr(t)
	r := runCLI(t, "call", "-e", nobody+","+nobodyElse, "--timeout", "2s", "Counter", "x", "Add", "1")
	if r.code != exitRetryable || r.stdout != "" {
		t.Errorf("want exit %d\n%s", exitRetryable, r)
	}
	for _, a := range []string{nobody, nobodyElse} {
		if n := strings.Count(r.stderr, a); n != 1 {
			t.Errorf("%s named %d times, want once\n%s", a, n, r)
		}
	}
	wantOneLine(t, r)
}
