package duro_test

import (
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// Every relative link in the repository's Markdown (README, ARCHITECTURE, PERFORMANCE,
// CHANGELOG, the packages' DESIGN notes, and any other) names a file or directory that
// exists, so a reader who follows one lands somewhere. Links to the web and anchors
// within the same page are not checked. The test runs in the module root, where go test
// runs the root package.
func TestDocLinksResolve(t *testing.T) {
	var docs []string
	err := filepath.WalkDir(".", func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && path != "." && (strings.HasPrefix(d.Name(), ".") || d.Name() == "testdata") {
			return filepath.SkipDir
		}
		if !d.IsDir() && strings.HasSuffix(path, ".md") {
			docs = append(docs, path)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"README.md", "ARCHITECTURE.md", "PERFORMANCE.md", "CHANGELOG.md"} {
		if !slices.Contains(docs, want) {
			t.Errorf("%s not found: is the test running in the module root?", want)
		}
	}
	for _, doc := range docs {
		b, err := os.ReadFile(doc)
		if err != nil {
			t.Fatal(err)
		}
		for _, l := range relativeLinks(string(b)) {
			target := l.path
			if strings.HasPrefix(target, "/") {
				target = strings.TrimPrefix(target, "/") // the repository's root, as GitHub reads it
			} else {
				target = filepath.Join(filepath.Dir(doc), target)
			}
			if _, err := os.Stat(target); err != nil {
				t.Errorf("%s:%d: link to %q: no such file in the repository", doc, l.line, l.path)
			}
		}
	}
}

// docLink is a relative link's path (without its #anchor) and the line it is on.
type docLink struct {
	path string
	line int
}

var (
	// inlineLink matches the target of [text](target) and [text](target "title"); the
	// text may have started on an earlier line, the target is on one.
	inlineLink = regexp.MustCompile(`\]\(\s*(?:<([^>]*)>|([^)\s]+))(?:\s+["'(][^)]*)?\s*\)`)
	// refLink matches a reference definition, [label]: target.
	refLink  = regexp.MustCompile(`^\s{0,3}\[[^\]]+\]:\s*(?:<([^>]*)>|(\S+))`)
	codeSpan = regexp.MustCompile("`+[^`]*`+")
)

// relativeLinks returns the links of a Markdown text that point into the repository:
// not those in code (fenced blocks, `spans`), to the web, or to an anchor of the page.
func relativeLinks(md string) []docLink {
	var out []docLink
	fence := ""
	for i, line := range strings.Split(md, "\n") {
		trimmed := strings.TrimSpace(line)
		if fence != "" {
			if strings.HasPrefix(trimmed, fence) {
				fence = ""
			}
			continue
		}
		if strings.HasPrefix(trimmed, "```") || strings.HasPrefix(trimmed, "~~~") {
			fence = trimmed[:3]
			continue
		}
		line = codeSpan.ReplaceAllString(line, "")
		var targets []string
		for _, m := range inlineLink.FindAllStringSubmatch(line, -1) {
			targets = append(targets, m[1]+m[2]) // <target> or target: one is empty
		}
		if m := refLink.FindStringSubmatch(line); m != nil {
			targets = append(targets, m[1]+m[2])
		}
		for _, target := range targets {
			u, err := url.Parse(target)
			if err != nil || u.Scheme != "" || u.Host != "" || u.Path == "" {
				continue // the web, mail, or #anchor of this page
			}
			out = append(out, docLink{path: u.Path, line: i + 1})
		}
	}
	return out
}

// The link finder itself: what it must see, and what it must leave alone.
func TestRelativeLinks(t *testing.T) {
	md := strings.Join([]string{
		"See [the design](fsm/DESIGN.md#why) and [a",
		"wrapped text](ARCHITECTURE.md \"title\").",
		"Not [the web](https://example.com/x.md), [mail](mailto:a@b.c) or [here](#top).",
		"Not in code: `[x](nope.md)`, `client.Call[int64](ctx, c, \"Add\", 5)`.",
		"```go",
		"n, err := client.Call[int64](ctx, counter, \"Add\", 5) // [x](nope.md)",
		"```",
		"![a picture](<docs/a b.png>) and [spaces](docs/a%20b.md)",
		"[ref]: ./deploy/systemd/duro.service",
	}, "\n")
	want := []docLink{
		{"fsm/DESIGN.md", 1},
		{"ARCHITECTURE.md", 2},
		{"docs/a b.png", 8},
		{"docs/a b.md", 8},
		{"./deploy/systemd/duro.service", 9},
	}
	if got := relativeLinks(md); !slices.Equal(got, want) {
		t.Errorf("relativeLinks =\n%v\nwant\n%v", got, want)
	}
}
