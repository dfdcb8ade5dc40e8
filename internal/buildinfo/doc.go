// Package buildinfo says which build of duro is running: its version, the commit it was
// built from, and the Go toolchain that built it. `duro --version` prints it and every
// node exports it on /metrics as duro_build_info.
//
// Where each field comes from, first match wins:
//
//	Version    -ldflags "-X github.com/duro-db/duro/internal/buildinfo.version=v1.2.3"
//	           (scripts/release.sh sets it), else the version of the duro module recorded
//	           in the binary (`go install ...@v1.2.3`, or the pseudo-version of a checkout),
//	           else "devel"
//	Commit     -X ...buildinfo.commit=<hash>, else the vcs.revision the go command
//	           stamped when it built duro's own command from a checkout (with "-dirty"
//	           when the tree had changes), else "unknown"
//	GoVersion  runtime.Version()
//
// Invariant: every field is non-empty, so a metric label or a bug report never carries a
// blank where a version should be.
package buildinfo
