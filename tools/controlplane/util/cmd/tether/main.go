// Command tether runs a program that dies with the process that started tether.
//
// Usage: tether PROGRAM [ARGS...]
//
//	tether -pdeathsig   prints the parent-death signal this process runs with (0 for none), so a
//	                    test can run "tether tether -pdeathsig" and see what PROGRAM is given
//
// It asks the kernel to send SIGKILL to it when its parent exits (PR_SET_PDEATHSIG survives execve),
// then replaces itself with PROGRAM. The test control plane starts etcd and the Kubernetes components
// through it, so even a SIGKILLed test runner leaves no server and no bound port behind.
//
// SIGKILL, not SIGTERM: the signal reaches every component at once, and a kube-apiserver told to
// stop gracefully waits for its requests in flight; if etcd exits first, those wait for etcd until
// the request timeout, and the API server stays up (with its port bound) for 60 s. A parent that
// stops the components on purpose sends SIGTERM itself, in order; this is only for a parent gone.
//
// The parent-death signal belongs to the thread that sets it, and execve keeps only the calling
// thread: prctl and exec must run on one OS thread, or the program runs with no parent-death signal
// at all (a goroutine moves between threads across a blocking system call such as LookPath's stat).
// That happened in CI: etcd, whose tether's main goroutine had moved, outlived a SIGKILLed launcher.
package main

import (
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"syscall"
	"unsafe"
)

const (
	prSetPdeathsig = 1
	prGetPdeathsig = 2
)

// Keeps the main goroutine on the main thread from before main runs until exec.
func init() { runtime.LockOSThread() }

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: tether PROGRAM [ARGS...]")
		os.Exit(2)
	}
	if os.Args[1] == "-pdeathsig" {
		var sig int32
		if _, _, errno := syscall.RawSyscall(syscall.SYS_PRCTL, prGetPdeathsig, uintptr(unsafe.Pointer(&sig)), 0); errno != 0 {
			fmt.Fprintln(os.Stderr, "tether: prctl:", errno)
			os.Exit(1)
		}
		fmt.Println(sig)
		return
	}
	parent := os.Getppid()
	path, err := exec.LookPath(os.Args[1])
	if err != nil {
		fmt.Fprintln(os.Stderr, "tether:", err)
		os.Exit(127)
	}
	env := os.Environ()
	if _, _, errno := syscall.RawSyscall(syscall.SYS_PRCTL, prSetPdeathsig, uintptr(syscall.SIGKILL), 0); errno != 0 {
		fmt.Fprintln(os.Stderr, "tether: prctl:", errno)
		os.Exit(1)
	}
	// The parent may have died before prctl took effect; then nobody is left to stop us.
	if os.Getppid() != parent {
		os.Exit(1)
	}
	err = syscall.Exec(path, os.Args[1:], env)
	fmt.Fprintln(os.Stderr, "tether: exec:", err)
	os.Exit(126)
}
