package limits

import (
	"cmp"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"
)

// enableEnv turns the suite on; without it TestLimits skips, so `go test ./...` (make test)
// runs only the unit tests of the package's pure parts.
const enableEnv = "CLAUDECAP_LIMITS"

var (
	rowsFlag = flag.String("rows", "",
		"comma-separated regular expressions; only rows whose name (scenario/limiter/mode[/headroom]) matches one run (default all)")
	reportFlag = flag.String("report", "", "directory of report.md and report.json (default bin/limits)")
)

// TestLimits runs the never-exceed suite: the selected rows, as many at a time as go
// test's -parallel allows (each has its own Redis, mock and proxies), then the report. It
// fails only when a row cannot run; targets are reported, never asserted.
func TestLimits(t *testing.T) {
	if os.Getenv(enableEnv) == "" {
		t.Skipf("the never-exceed suite runs only with %s=1 (make bench-limits); it takes about 15 minutes", enableEnv)
	}
	rows, err := selectRows(allRows(scenarios()), *rowsFlag)
	if err != nil {
		t.Fatal(err)
	}
	outDir := *reportFlag
	if outDir == "" {
		root, err := moduleRoot()
		if err != nil {
			t.Fatal(err)
		}
		outDir = filepath.Join(root, "bin", "limits")
	}
	started := time.Now()
	results := make([]*rowResult, len(rows))
	t.Run("rows", func(t *testing.T) {
		for _, i := range longestFirst(rows) {
			r := rows[i]
			t.Run(r.name(), func(t *testing.T) {
				t.Parallel()
				results[i] = runRow(t, r)
				t.Logf("%s", strings.Join(tableRow(results[i]), " | "))
			})
		}
	})
	for i, res := range results {
		if res == nil {
			results[i] = failedRow(rows[i], "the row stopped early; see the test log")
		}
	}
	rep := &report{
		Started: started, WallSeconds: time.Since(started).Seconds(), Host: hostDescription(), Load: loadAverage(),
		Filter: *rowsFlag, Rows: results,
	}
	if err := writeReport(outDir, rep); err != nil {
		t.Errorf("writing the report: %v", err)
	}
	if err := writeMarkdown(os.Stdout, rep); err != nil {
		t.Error(err)
	}
	fmt.Printf("\nReport: %s\n", filepath.Join(outDir, "report.md"))
}

// longestFirst orders row indices by length, longest first, so that parallel rows finish
// close together.
func longestFirst(rows []row) []int {
	idx := make([]int, len(rows))
	for i := range idx {
		idx[i] = i
	}
	slices.SortStableFunc(idx, func(a, b int) int { return cmp.Compare(rows[b].length(), rows[a].length()) })
	return idx
}

// moduleRoot is the nearest directory above the working directory holding go.mod.
func moduleRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("no go.mod above the working directory")
		}
		dir = parent
	}
}

func hostDescription() string {
	return fmt.Sprintf("%s/%s, %d CPUs, %s", runtime.GOOS, runtime.GOARCH, runtime.NumCPU(), runtime.Version())
}

// loadAverage is /proc/loadavg's first three fields.
func loadAverage() string {
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
