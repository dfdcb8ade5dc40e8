// Command duro runs a duro cluster node, a development cluster, and the tools that call and
// inspect one. Each command lives in its own file; this one only wires them together.
package main

import (
	"os"
)

func main() {
	os.Exit(run(os.Args, os.Stdin, os.Stdout, os.Stderr))
}
