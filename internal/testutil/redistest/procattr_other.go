//go:build !linux

package redistest

import "syscall"

// sysProcAttr has nothing to add outside Linux; Cleanup still stops the server.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{}
}
