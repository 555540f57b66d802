// Package benchenv describes the machine a benchmark ran on, for the reports of the
// benchmark programs under hack/bench: numbers from a shared 2-core VM mean little
// without the load they were measured under.
package benchenv

import (
	"fmt"
	"os"
	"runtime"
	"strings"
)

// Host is the operating system, architecture, CPU count and Go version.
func Host() string {
	return fmt.Sprintf("%s/%s, %d CPUs, %s", runtime.GOOS, runtime.GOARCH, runtime.NumCPU(), runtime.Version())
}

// LoadAverage is the first three fields of /proc/loadavg, or "unknown".
func LoadAverage() string {
	data, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "unknown"
	}
	fields := strings.Fields(string(data))
	if len(fields) < 3 {
		return "unknown"
	}
	return strings.Join(fields[:3], " ")
}
