//go:build !linux

package jepsen

import "syscall"

// nodeProcAttr puts a node in its own process group, so a Ctrl-C meant for the harness
// does not kill the nodes before the harness has healed and read them. (Only Linux can
// also tie the node's life to the harness's.)
func nodeProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true}
}
