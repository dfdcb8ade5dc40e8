package main

import (
	"fmt"
	"runtime"

	"github.com/urfave/cli/v2"

	"github.com/duro-db/duro/internal/buildinfo"
)

// urfave/cli prints `duro --version` with this global; its default prints only Version.
func init() { cli.VersionPrinter = printVersion }

// printVersion answers `duro --version`: what a bug report needs to name the build.
func printVersion(c *cli.Context) {
	b := buildinfo.Get()
	fmt.Fprintf(c.App.Writer, "duro version %s\ncommit:     %s\ngo version: %s\nplatform:   %s/%s\n",
		b.Version, b.Commit, b.GoVersion, runtime.GOOS, runtime.GOARCH)
}
