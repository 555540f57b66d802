package redistest

import "syscall"

// sysProcAttr makes the kernel kill redis-server if the test binary dies, so a
// crashed or killed test run does not leave servers behind.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
