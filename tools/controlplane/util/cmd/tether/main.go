// Command tether runs a program that dies with the process that started tether.
//
// Usage: tether PROGRAM [ARGS...]
//
// It asks the kernel to send SIGKILL to it when its parent exits (PR_SET_PDEATHSIG survives execve),
// then replaces itself with PROGRAM. The test control plane starts etcd and the Kubernetes components
// through it, so even a SIGKILLed test runner leaves no server and no bound port behind.
//
// SIGKILL, not SIGTERM: the signal reaches every component at once, and a kube-apiserver told to
// stop gracefully waits for its requests in flight; if etcd exits first, those wait for etcd until
// the request timeout, and the API server stays up (with its port bound) for 60 s. A parent that
// stops the components on purpose sends SIGTERM itself, in order; this is only for a parent gone.
package main

import (
	"fmt"
	"os"
	"os/exec"
	"syscall"
)

const prSetPdeathsig = 1

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: tether PROGRAM [ARGS...]")
		os.Exit(2)
	}
	parent := os.Getppid()
	if _, _, errno := syscall.RawSyscall(syscall.SYS_PRCTL, prSetPdeathsig, uintptr(syscall.SIGKILL), 0); errno != 0 {
		fmt.Fprintln(os.Stderr, "tether: prctl:", errno)
		os.Exit(1)
	}
	// The parent may have died before prctl took effect; then nobody is left to stop us.
	if os.Getppid() != parent {
		os.Exit(1)
	}
	path, err := exec.LookPath(os.Args[1])
	if err != nil {
		fmt.Fprintln(os.Stderr, "tether:", err)
		os.Exit(127)
	}
	err = syscall.Exec(path, os.Args[1:], os.Environ())
	fmt.Fprintln(os.Stderr, "tether: exec:", err)
	os.Exit(126)
}
