package jepsen

import "syscall"

// nodeProcAttr puts a node in its own process group, so a Ctrl-C meant for the harness
// does not kill the nodes before the harness has healed and read them, and has the kernel
// kill it if the harness dies, so an interrupted test leaves no node running.
func nodeProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
}
