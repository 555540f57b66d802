package limits

import (
	"cmp"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/claudecap/claudecap/internal/benchenv"
	"github.com/claudecap/claudecap/internal/kubeenv"
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
		root, err := kubeenv.ModuleRoot()
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
		Started: started, WallSeconds: time.Since(started).Seconds(), Host: benchenv.Host(), Load: benchenv.LoadAverage(),
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
