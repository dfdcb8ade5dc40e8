package main

import (
	"fmt"
	"io"
	"os"
)

const usage = `usage:
  etcdbench cluster [flags]   start a 3-member etcd cluster (one process per member) and wait
  etcdbench load [flags]      drive a workload against it
  etcdbench failover [flags]  start a cluster, write to it, and kill, pause or cut off its leader
Run a subcommand with -h for its flags.
`

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// run dispatches to a subcommand and returns the exit code: 0, 1 on failure, 2 on usage.
func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	var err error
	switch args[0] {
	case "cluster":
		err = runCluster(args[1:], stdout, stderr)
	case "member": // internal: what `cluster` re-executes once per member
		err = runMember(args[1:], stderr)
	case "load":
		err = runLoad(args[1:], stdout, stderr)
	case "failover":
		err = runFailover(args[1:], stdout, stderr)
	case "-h", "-help", "--help", "help":
		fmt.Fprint(stdout, usage)
		return 0
	default:
		fmt.Fprintf(stderr, "etcdbench: unknown subcommand %q\n%s", args[0], usage)
		return 2
	}
	if err != nil {
		if err == errUsage {
			return 2
		}
		fmt.Fprintf(stderr, "etcdbench: %v\n", err)
		return 1
	}
	return 0
}
