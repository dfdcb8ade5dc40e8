package buildinfo

import (
	"runtime"
	"runtime/debug"
	"strings"
	"testing"
)

func TestResolve(t *testing.T) {
	settings := func(kv ...string) []debug.BuildSetting {
		var s []debug.BuildSetting
		for i := 0; i < len(kv); i += 2 {
			s = append(s, debug.BuildSetting{Key: kv[i], Value: kv[i+1]})
		}
		return s
	}
	const rev = "e9d1fc6a0b1c2d3e4f5a6b7c8d9e0f1a2b3c4d5e"
	ownCheckout := &debug.BuildInfo{
		Main:     debug.Module{Path: modulePath, Version: "(devel)"},
		Settings: settings("vcs.revision", rev, "vcs.modified", "false"),
	}
	tests := []struct {
		name                    string
		bi                      *debug.BuildInfo
		ldVersion, ldCommit     string
		wantVersion, wantCommit string
	}{
		{"release build: -X wins over build info", ownCheckout, "v0.2.0", "abc123", "v0.2.0", "abc123"},
		{"release version without a commit", ownCheckout, "v0.2.0", "", "v0.2.0", rev},
		{"go build in a checkout", ownCheckout, "", "", "devel", rev},
		{"go build in a modified checkout", &debug.BuildInfo{
			Main:     debug.Module{Path: modulePath, Version: "v0.0.0-20261208013000-e9d1fc6a0b1c+dirty"},
			Settings: settings("vcs.revision", rev, "vcs.modified", "true"),
		}, "", "", "v0.0.0-20261208013000-e9d1fc6a0b1c+dirty", rev + "-dirty"},
		{"go install @version", &debug.BuildInfo{
			Main: debug.Module{Path: modulePath, Version: "v0.1.0"},
		}, "", "", "v0.1.0", "unknown"},
		{"built with -buildvcs=false", &debug.BuildInfo{
			Main:     debug.Module{Path: modulePath, Version: "(devel)"},
			Settings: settings("-buildvcs", "false"),
		}, "", "", "devel", "unknown"},
		{"embedded: the dependency's version, not the program's commit", &debug.BuildInfo{
			Main:     debug.Module{Path: "example.com/app", Version: "v3.0.0"},
			Deps:     []*debug.Module{{Path: "github.com/other/mod", Version: "v9.9.9"}, {Path: modulePath, Version: "v0.1.0"}},
			Settings: settings("vcs.revision", rev),
		}, "", "", "v0.1.0", "unknown"},
		{"embedded, replaced by a directory", &debug.BuildInfo{
			Main: debug.Module{Path: "example.com/app"},
			Deps: []*debug.Module{{Path: modulePath, Version: "v0.1.0", Replace: &debug.Module{Path: "../duro"}}},
		}, "", "", "devel", "unknown"},
		{"embedded, replaced by another version", &debug.BuildInfo{
			Main: debug.Module{Path: "example.com/app"},
			Deps: []*debug.Module{{Path: modulePath, Version: "v0.1.0", Replace: &debug.Module{Path: "example.com/fork", Version: "v0.1.1"}}},
		}, "", "", "v0.1.1", "unknown"},
		{"no build info", nil, "", "", "devel", "unknown"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := resolve(tt.bi, tt.ldVersion, tt.ldCommit, "go1.26.8")
			want := Info{Version: tt.wantVersion, Commit: tt.wantCommit, GoVersion: "go1.26.8"}
			if got != want {
				t.Errorf("resolve = %+v, want %+v", got, want)
			}
		})
	}
}

// The test binary is built by go test, without -X: Get reports the toolchain it runs on
// and never leaves a field empty.
func TestGetFillsEveryField(t *testing.T) {
	info := Get()
	if info.GoVersion != runtime.Version() {
		t.Errorf("GoVersion = %q, want %q", info.GoVersion, runtime.Version())
	}
	if info.Version == "" || info.Commit == "" {
		t.Errorf("empty field in %+v", info)
	}
	if strings.ContainsAny(info.Version+info.Commit, " \n") {
		t.Errorf("whitespace in %+v", info)
	}
}
