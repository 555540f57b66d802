package closedloop

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/go-logr/logr"
	ctrllog "sigs.k8s.io/controller-runtime/pkg/log"

	"github.com/claudecap/claudecap/internal/benchenv"
	"github.com/claudecap/claudecap/internal/kubeenv"
)

// enableEnv turns the lab on; without it TestScenarios skips, so `go test ./...` (make
// test) runs only the package's unit tests.
const enableEnv = "CLAUDECAP_SCENARIOS"

var (
	scenarioFlag = flag.String("scenario", "", "comma-separated scenarios to run (a, b1, b2, b3, c, d, e, f, g, h); default all")
	reportFlag   = flag.String("report", "", "directory of report.html, report.json and results.md (default bin/scenarios)")
)

// TestScenarios runs the closed-loop scenario lab: every scenario (or those -scenario
// names) in turn, then the report. It fails only when the lab itself breaks or a job is
// lost or duplicated; scores are printed against their targets, never asserted.
func TestScenarios(t *testing.T) {
	if os.Getenv(enableEnv) == "" {
		t.Skipf("the scenario lab runs only with %s=1 (make bench-scenarios); it takes about 15 minutes", enableEnv)
	}
	selected, err := selectScenarios(scenarios(), *scenarioFlag)
	if err != nil {
		t.Fatal(err)
	}
	outDir := *reportFlag
	if outDir == "" {
		root, err := kubeenv.ModuleRoot()
		if err != nil {
			t.Fatal(err)
		}
		outDir = filepath.Join(root, "bin", "scenarios")
	}
	ctrllog.SetLogger(logr.Discard()) // envtest's own lines; the manager logs to its files
	suiteStart := time.Now()
	l, err := startLab()
	if err != nil {
		t.Fatalf("starting the lab: %v", err)
	}
	defer l.stop()

	var runs []*runRecord
	for _, sc := range selected {
		t.Run(sc.name, func(t *testing.T) {
			rec := l.runScenario(t, sc, outDir)
			runs = append(runs, rec)
			row := rowFor(rec)
			var cells []string
			for i, c := range row.Cells {
				cells = append(cells, tableHeader[i+1]+": "+c.Text)
			}
			t.Logf("%s (%s) in %.0f s: %s", sc.name, sc.title, rec.WallSeconds, strings.Join(cells, "; "))
		})
	}
	info := suiteInfo{Started: suiteStart, Wall: time.Since(suiteStart), Host: benchenv.Host(), Load: benchenv.LoadAverage()}
	if err := writeReport(outDir, runs, info); err != nil {
		t.Errorf("writing the report: %v", err)
	}
	var table strings.Builder
	if err := writeMarkdown(&table, runs); err != nil {
		t.Error(err)
	}
	fmt.Printf("\nScenario lab: %d scenarios in %s (load average %s)\n\n%s\nReport: %s\n",
		len(runs), info.Wall.Round(time.Second), info.Load, table.String(), filepath.Join(outDir, "report.html"))
}

// selectScenarios keeps the named scenarios, in suite order; "" keeps all.
func selectScenarios(all []*scenario, names string) ([]*scenario, error) {
	if strings.TrimSpace(names) == "" {
		return all, nil
	}
	want := map[string]bool{}
	for _, n := range strings.Split(names, ",") {
		want[strings.TrimSpace(n)] = true
	}
	var out []*scenario
	for _, sc := range all {
		if want[sc.name] {
			out = append(out, sc)
			delete(want, sc.name)
		}
	}
	if len(want) > 0 {
		var unknown []string
		for n := range want {
			unknown = append(unknown, n)
		}
		return nil, fmt.Errorf("-scenario: unknown scenario(s) %s; the suite has a, b1, b2, b3, c, d, e, f, g, h", strings.Join(unknown, ", "))
	}
	return out, nil
}
