package closedloop

import (
	_ "embed"
	"encoding/json"
	"fmt"
	"html/template"
	"io"
	"math"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/claudecap/claudecap/internal/svgchart"
)

//go:embed report.html.tmpl
var reportTemplateText string

var reportTemplate = template.Must(template.New("report").Parse(reportTemplateText))

// Targets of issue 8, printed beside the numbers.
const (
	targetDrain          = 1.2
	targetUtilization    = 0.90
	targetReplicaMinutes = 1.3
	targetSplit          = 0.05
	targetReaction       = 3.0
	// minUtilizationSeconds: a backlog that waited less than this says nothing about
	// utilization (a steady 50% load queues a job now and then).
	minUtilizationSeconds = 15
)

var tableHeader = []string{
	"scenario", "drain / optimum", "reversals (against trend)", "binding utilization while backlogged",
	"replica-min / optimum", "upstream 429s", "peak 60 s OTPM / limit", "split vs weights", "reaction", "notes",
}

var tableTargets = []string{
	"target", "<= 1.2x", "0 against trend", ">= 90%", "<= 1.3x", "0", "info", "within 5 pts", "p50 <= 3 s", "",
}

type cell struct {
	Text   string
	Status string // "met", "missed" or "" (no target)
}

type tableRow struct {
	Name, Title string
	Cells       []cell
}

func judged(ok bool, text string) cell {
	if ok {
		return cell{Text: text, Status: "met"}
	}
	return cell{Text: text, Status: "missed"}
}

var notApplicable = cell{Text: "-"}

// rowFor is one scenario's line of the results table.
func rowFor(r *runRecord) tableRow {
	m := r.Metrics
	row := tableRow{Name: r.Name, Title: r.Title}
	add := func(c cell) { row.Cells = append(row.Cells, c) }

	switch {
	case m.OptimumDrainSeconds == nil:
		add(notApplicable)
	case m.DrainSeconds == nil:
		add(judged(false, fmt.Sprintf("not drained / %.0f s", *m.OptimumDrainSeconds)))
	default:
		ratio := *m.DrainSeconds / *m.OptimumDrainSeconds
		add(judged(ratio <= targetDrain, fmt.Sprintf("%.0f s / %.0f s = %.2fx", *m.DrainSeconds, *m.OptimumDrainSeconds, ratio)))
	}
	add(judged(m.AgainstTrend == 0, fmt.Sprintf("%d (%d)", m.Reversals, m.AgainstTrend)))
	switch {
	case m.Utilization == nil || m.UtilizationSeconds < minUtilizationSeconds:
		add(cell{Text: fmt.Sprintf("- (backlog %.0f s)", m.UtilizationSeconds)})
	case r.World.Offered > 0 && r.World.Offered < 1:
		// Arrivals below the budget cannot fill it: shown, not judged.
		add(cell{Text: fmt.Sprintf("%.0f%% over %.0f s (offered %.0f%%)", *m.Utilization*100, m.UtilizationSeconds, r.World.Offered*100)})
	default:
		add(judged(*m.Utilization >= targetUtilization, fmt.Sprintf("%.0f%% over %.0f s", *m.Utilization*100, m.UtilizationSeconds)))
	}
	if m.OptimumReplicaMinutes > 0 {
		ratio := m.ReplicaMinutes / m.OptimumReplicaMinutes
		add(judged(ratio <= targetReplicaMinutes, fmt.Sprintf("%.1f / %.1f = %.2fx", m.ReplicaMinutes, m.OptimumReplicaMinutes, ratio)))
	} else {
		add(notApplicable)
	}
	add(judged(m.Upstream429s == 0, fmt.Sprintf("%d", m.Upstream429s)))
	d := r.World.Binding
	add(cell{Text: fmt.Sprintf("%.2fx (%s)", m.PeakOverLimit[d], svgchart.HumanNumber(float64(m.Peak[d])))})
	if m.ShareFirst != nil {
		diff := math.Abs(*m.ShareFirst - *m.WantedShareFirst)
		add(judged(diff <= targetSplit, fmt.Sprintf("%.0f%% : %.0f%% (want %.0f%% : %.0f%%)",
			*m.ShareFirst*100, (1-*m.ShareFirst)*100, *m.WantedShareFirst*100, (1-*m.WantedShareFirst)*100)))
	} else {
		add(notApplicable)
	}
	if m.ReactionSeconds != nil {
		add(judged(*m.ReactionSeconds <= targetReaction, fmt.Sprintf("%.1f s", *m.ReactionSeconds)))
	} else {
		add(judged(false, "no scale-up"))
	}
	add(cell{Text: strings.Join(notes(r), "; ")})
	return row
}

// notes are the scenario-specific figures of the last column.
func notes(r *runRecord) []string {
	m := r.Metrics
	var out []string
	if m.OutageMinReplicas != nil {
		rec := "never recovered"
		switch {
		case m.RecoverySeconds == nil:
		case *m.RecoverySeconds <= recoveryWindow+1: // one sample late is still the first window
			// The first full window after the restart already ran at the old rate.
			rec = fmt.Sprintf("recovered within %.0f s of the restart", recoveryWindow)
		default:
			rec = fmt.Sprintf("recovered %.0f s after the restart", *m.RecoverySeconds)
		}
		out = append(out, fmt.Sprintf("outage: min %d replicas (%d before), %s", *m.OutageMinReplicas, *m.PreOutageReplicas, rec))
	}
	if r.World.EndAtMin {
		switch {
		case m.BackToMinSeconds == nil:
			out = append(out, "not back to min by the end")
		case m.IdleAfterSeconds != nil:
			out = append(out, fmt.Sprintf("back to min %.0f s after the last arrival, %.0f s after the queue went idle",
				*m.BackToMinSeconds, *m.BackToMinSeconds-*m.IdleAfterSeconds))
		default:
			out = append(out, fmt.Sprintf("back to min %.0f s after the last arrival", *m.BackToMinSeconds))
		}
	}
	if m.PoolPerMinute != nil {
		d := r.World.Binding
		left := r.World.Budget[d] - *m.ExternalPerMinute
		out = append(out, fmt.Sprintf("with the external client: pool %s/min against %s left to it (%.0f%%), pool + external %.2fx the limit",
			svgchart.HumanNumber(*m.PoolPerMinute), svgchart.HumanNumber(left), *m.PoolPerMinute/left*100,
			(*m.PoolPerMinute+*m.ExternalPerMinute)/r.World.Limits[d]))
	}
	if m.BackloggedPerMinute != nil && m.UtilizationSeconds >= minUtilizationSeconds {
		out = append(out, fmt.Sprintf("%.0f jobs/min while backlogged", *m.BackloggedPerMinute))
	}
	for w, mu := range r.World.DeclaredMu {
		if math.Abs(float64(mu)-r.World.TrueMuPerMinute) > 5 {
			out = append(out, fmt.Sprintf("per-replica estimate %d/min at the end (declared %d, true %.0f)",
				lastObservedMu(r, w), mu, r.World.TrueMuPerMinute))
		}
	}
	if m.External429s > 0 {
		out = append(out, fmt.Sprintf("external client's 429s %d", m.External429s))
	}
	for w, j := range r.Jobs {
		switch {
		case j.Lost > j.LostToRestart || j.Duplicates > 0:
			out = append(out, fmt.Sprintf("%s: %d jobs lost (%d with Redis's data), %d duplicated", r.Workloads[w], j.Lost, j.LostToRestart, j.Duplicates))
		case j.LostToRestart > 0:
			out = append(out, fmt.Sprintf("%s: %d jobs lost with Redis's data (by design), none otherwise", r.Workloads[w], j.LostToRestart))
		}
	}
	return out
}

// lastObservedMu is the last non-zero per-replica throughput the operator reported.
func lastObservedMu(r *runRecord, w int) int64 {
	for i := len(r.Samples) - 1; i >= 0; i-- {
		if v := r.Samples[i].W[w].Status.PerReplica; v > 0 {
			return v
		}
	}
	return 0
}

// reactionP50 is the nearest-rank median of the scenarios' reaction times.
func reactionP50(runs []*runRecord) (float64, bool) {
	var xs []float64
	for _, r := range runs {
		if r.Metrics.ReactionSeconds != nil {
			xs = append(xs, *r.Metrics.ReactionSeconds)
		}
	}
	if len(xs) == 0 {
		return 0, false
	}
	sort.Float64s(xs)
	return xs[int(math.Ceil(0.5*float64(len(xs))))-1], true
}

// writeMarkdown writes the results table as docs/benchmarks.md would show it.
func writeMarkdown(w io.Writer, runs []*runRecord) error {
	var b strings.Builder
	b.WriteString("| " + strings.Join(tableHeader, " | ") + " |\n")
	b.WriteString("|" + strings.Repeat("---|", len(tableHeader)) + "\n")
	b.WriteString("| " + strings.Join(tableTargets, " | ") + " |\n")
	for _, r := range runs {
		row := rowFor(r)
		cells := []string{row.Name + " " + row.Title}
		for _, c := range row.Cells {
			text := c.Text
			if c.Status != "" {
				text += ", " + c.Status
			}
			cells = append(cells, strings.ReplaceAll(text, "|", "/"))
		}
		b.WriteString("| " + strings.Join(cells, " | ") + " |\n")
	}
	if p50, ok := reactionP50(runs); ok {
		verdict := "met"
		if p50 > targetReaction {
			verdict = "missed"
		}
		fmt.Fprintf(&b, "\nReaction p50 over %d scenarios: %.1f s (target <= 3 s: %s).\n", len(runs), p50, verdict)
	}
	_, err := io.WriteString(w, b.String())
	return err
}

type headlineItem struct{ Label, Value string }

type scenarioPage struct {
	Name, Title, About string
	Problems           []string
	Headline           []headlineItem
	Chart              *scenarioChart
	Reversals          []string
	Events             []eventRow
}

type eventRow struct {
	T                         string
	Workload, Reason, Message string
}

type reportPage struct {
	Title, Generated, Host, Wall string
	Problems                     []string
	Headline                     []headlineItem
	Header, Targets              []string
	Rows                         []tableRow
	Scenarios                    []scenarioPage
	Setting                      string
}

// suiteInfo describes the whole run for the page's header.
type suiteInfo struct {
	Started time.Time
	Wall    time.Duration
	Host    string
	Load    string
}

// writeHTML renders the report: one self-contained page, inline CSS and SVG, no scripts.
func writeHTML(w io.Writer, runs []*runRecord, info suiteInfo) error {
	page := reportPage{
		Title:     "claudecap scenario lab " + info.Started.UTC().Format(time.RFC3339),
		Generated: info.Started.UTC().Format(time.RFC1123),
		Host:      info.Host,
		Wall:      info.Wall.Round(time.Second).String(),
		Header:    tableHeader[1:],
		Targets:   tableTargets[1:],
		Setting:   settingText(),
	}
	page.Header = append([]string{"scenario"}, page.Header...)
	page.Targets = append([]string{"target"}, page.Targets...)
	page.Headline = []headlineItem{
		{"Scenarios", fmt.Sprintf("%d", len(runs))},
		{"Suite wall time", page.Wall},
		{"Load average at the end", info.Load},
	}
	if p50, ok := reactionP50(runs); ok {
		page.Headline = append(page.Headline, headlineItem{"Reaction p50", fmt.Sprintf("%.1f s (target <= 3 s)", p50)})
	}
	for _, r := range runs {
		page.Rows = append(page.Rows, rowFor(r))
		page.Scenarios = append(page.Scenarios, pageFor(r))
		page.Problems = append(page.Problems, prefixed(r.Name, r.Problems)...)
	}
	if err := reportTemplate.Execute(w, page); err != nil {
		return fmt.Errorf("rendering the HTML report: %w", err)
	}
	return nil
}

func prefixed(name string, problems []string) []string {
	out := make([]string, len(problems))
	for i, p := range problems {
		out[i] = name + ": " + p
	}
	return out
}

func pageFor(r *runRecord) scenarioPage {
	m := r.Metrics
	p := scenarioPage{Name: r.Name, Title: r.Title, About: r.About, Problems: r.Problems, Chart: chartFor(r),
		Reversals: m.ReversalNotes}
	var pushed, acked, left int
	for _, j := range r.Jobs {
		pushed, acked, left = pushed+j.Pushed, acked+j.AckedOnce, left+j.Left
	}
	d := r.World.Binding
	p.Headline = []headlineItem{
		{"Jobs pushed / done once / left", fmt.Sprintf("%d / %d / %d", pushed, acked, left)},
		{"Replica-minutes / optimum", fmt.Sprintf("%.1f / %.1f", m.ReplicaMinutes, m.OptimumReplicaMinutes)},
		{"Budget-bound throughput", fmt.Sprintf("%.0f jobs/min (%s)", r.World.BudgetBoundPerMin, dimensionNames[d])},
		{"Peak 60 s usage / limit", fmt.Sprintf("RPM %.2fx, ITPM %.2fx, OTPM %.2fx", m.PeakOverLimit[0], m.PeakOverLimit[1], m.PeakOverLimit[2])},
		{"Upstream 429s", fmt.Sprintf("%d", m.Upstream429s)},
		{"Wall time", fmt.Sprintf("%.0f s", r.WallSeconds)},
	}
	if m.Utilization != nil {
		p.Headline = append(p.Headline, headlineItem{"Binding utilization", fmt.Sprintf("%.0f%% over %.0f s", *m.Utilization*100, m.UtilizationSeconds)})
	}
	for _, n := range notes(r) {
		p.Headline = append(p.Headline, headlineItem{"Note", n})
	}
	for _, e := range r.Events {
		p.Events = append(p.Events, eventRow{T: fmt.Sprintf("%.1fs", e.T), Workload: r.Workloads[e.Workload], Reason: e.Reason,
			Message: e.Message})
	}
	return p
}

// settingText describes the lab's world for the report's last section.
func settingText() string {
	budget, cost := poolBudget(), perRequest()
	perMinute, binding := budgetBoundThroughput(1, [3]float64{})
	var b strings.Builder
	fmt.Fprintf(&b, "limits (per minute): %d requests, %d input tokens, %d output tokens; headroom %d%%\n", limitRPM, limitITPM, limitOTPM, headroom)
	fmt.Fprintf(&b, "pool budget: %.0f requests, %.0f input tokens, %.0f output tokens\n", budget[0], budget[1], budget[2])
	fmt.Fprintf(&b, "per call: %.0f input tokens, %.0f output tokens (max_tokens %d), %.3f s at the mock (ttft %s, %s per token)\n",
		cost[1], cost[2], maxTokens, callSeconds(), ttftMean, perTokenMean)
	fmt.Fprintf(&b, "true per-replica throughput: %.1f calls/min; budget-bound throughput: %.0f jobs/min (%s binds), %.1f replicas\n",
		trueMu(), perMinute, dimensionNames[binding], perMinute/trueMu())
	fmt.Fprintf(&b, "pods: Ready %s after creation, one worker each, each with its own claudecap proxy process (--wait 30s)\n", startDelay)
	fmt.Fprintf(&b, "ClaudeCapacity: replicas 0..%d, queue.targetDrainSeconds %d, poll interval 2 s, behavior default unless the scenario says\n",
		maxReplicas, drainSeconds)
	return b.String()
}

// writeReport writes report.html, report.json and results.md into dir.
func writeReport(dir string, runs []*runRecord, info suiteInfo) error {
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return err
	}
	for name, write := range map[string]func(io.Writer) error{
		"report.html": func(w io.Writer) error { return writeHTML(w, runs, info) },
		"results.md":  func(w io.Writer) error { return writeMarkdown(w, runs) },
		"report.json": func(w io.Writer) error {
			enc := json.NewEncoder(w)
			enc.SetIndent("", " ")
			return enc.Encode(map[string]any{"started": info.Started.UTC(), "wallSeconds": info.Wall.Seconds(),
				"host": info.Host, "load": info.Load, "scenarios": runs})
		},
	} {
		f, err := os.Create(filepath.Join(dir, name))
		if err != nil {
			return err
		}
		err = write(f)
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return fmt.Errorf("writing %s: %w", name, err)
		}
	}
	return nil
}
