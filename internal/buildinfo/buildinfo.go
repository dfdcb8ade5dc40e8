package buildinfo

import (
	"runtime"
	"runtime/debug"
	"sync"
)

// Set at link time by scripts/release.sh; empty otherwise. They must stay variables of
// type string, unexported or not: -X sets nothing else, and silently.
var (
	version string
	commit  string
)

// modulePath is the module whose version a binary reports, whether duro's own command
// or a program that embeds duro as a library.
const modulePath = "github.com/duro-db/duro"

// Info describes one build.
type Info struct {
	Version   string // "v0.1.0", a pseudo-version, or "devel"
	Commit    string // full commit hash, "-dirty" appended for a modified tree, or "unknown"
	GoVersion string // e.g. "go1.26.8"
}

var (
	once   sync.Once
	cached Info
)

// Get returns the running binary's build.
func Get() Info {
	once.Do(func() {
		bi, _ := debug.ReadBuildInfo() // nil when built without module support
		cached = resolve(bi, version, commit, runtime.Version())
	})
	return cached
}

// resolve applies the precedence in the package comment; ldVersion and ldCommit are what
// -X set, bi is the build information the go command recorded (nil if none).
func resolve(bi *debug.BuildInfo, ldVersion, ldCommit, goVersion string) Info {
	info := Info{Version: ldVersion, Commit: ldCommit, GoVersion: goVersion}
	if info.Version == "" {
		info.Version = moduleVersion(bi)
	}
	if info.Commit == "" {
		info.Commit = vcsCommit(bi)
	}
	if info.GoVersion == "" {
		info.GoVersion = "unknown"
	}
	return info
}

// moduleVersion is duro's module version as the binary recorded it: the main module's
// when the binary is duro's own, the dependency's (after any replace) when a program
// embeds duro.
func moduleVersion(bi *debug.BuildInfo) string {
	if bi == nil {
		return "devel"
	}
	v := ""
	if bi.Main.Path == modulePath {
		v = bi.Main.Version
	} else {
		for _, d := range bi.Deps {
			if d.Path != modulePath {
				continue
			}
			v = d.Version
			if d.Replace != nil {
				v = d.Replace.Version // "" for a replacement by a directory
			}
		}
	}
	if v == "" || v == "(devel)" {
		return "devel"
	}
	return v
}

// vcsCommit is the revision the go command stamped, which it does only for the main
// module, when built inside a checkout and not with -buildvcs=false. In a program that
// embeds duro that revision is the program's, not duro's, so it is not used.
func vcsCommit(bi *debug.BuildInfo) string {
	if bi == nil || bi.Main.Path != modulePath {
		return "unknown"
	}
	var rev string
	var modified bool
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.modified":
			modified = s.Value == "true"
		}
	}
	if rev == "" {
		return "unknown"
	}
	if modified {
		rev += "-dirty"
	}
	return rev
}
