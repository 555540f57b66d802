package limits

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/claudecap/claudecap/internal/benchenv"
	"github.com/claudecap/claudecap/pkg/ratelimit"
)

// Targets of the suite.
const (
	// shareTarget is the least share of the pool's binding limit a claudecap row at 90%
	// headroom must use in the steady state.
	shareTarget = 0.95
	// stretchShare is the share the issue hopes for; reported, not flagged.
	stretchShare = 0.98
	// targetHeadroom is the headroom whose rows the share target applies to.
	targetHeadroom = 0.9
)

// dims is a quantity per dimension, as the report's JSON spells it.
type dims struct {
	Requests     float64 `json:"requests"`
	InputTokens  float64 `json:"input_tokens"`
	OutputTokens float64 `json:"output_tokens"`
}

func dimsOf(p perDim) dims { return dims{p[dimRequests], p[dimInput], p[dimOutput]} }

func (d dims) get(dim dimension) float64 {
	return [dimCount]float64{d.Requests, d.InputTokens, d.OutputTokens}[dim]
}

// clientResult is what the clients saw over the whole row.
type clientResult struct {
	// Calls counts calls made, those the fixed window refused included.
	Calls int64 `json:"calls"`
	// Results counts each call's final result (ok, rate_limited, server_error, ...).
	Results map[string]int64 `json:"results"`
	// Statuses counts HTTP attempts by status ("transport": no response).
	Statuses map[string]int64 `json:"statuses"`
	// RateLimited is every 429 a client saw: from a proxy, from the API through a proxy
	// or directly, or from the fixed window (never sent).
	RateLimited       int64 `json:"rate_limited"`
	RateLimitedProxy  int64 `json:"rate_limited_by_proxy"`
	RateLimitedAPI    int64 `json:"rate_limited_by_api"`
	RateLimitedWindow int64 `json:"rate_limited_by_fixed_window"`
	// Unavailable counts 503s (the proxies fail closed while Redis is down or the pool
	// is not configured).
	Unavailable int64 `json:"unavailable"`
}

// upstreamResult is what the mock answered over the whole row.
type upstreamResult struct {
	// RateLimited counts the mock's 429s; the target is 0.
	RateLimited int64 `json:"rate_limited"`
	// ByDimension splits them by the limit that refused.
	ByDimension map[string]int64 `json:"by_dimension"`
	// AfterRestart counts those after Redis came back (outage rows only).
	AfterRestart *int64 `json:"after_restart,omitempty"`
	// Statuses counts all the mock's answers by status.
	Statuses map[string]int64 `json:"statuses"`
}

// steadyResult is the steady-state window, from the mock's own accounting.
type steadyResult struct {
	StartSeconds float64 `json:"start_seconds"`
	Seconds      float64 `json:"seconds"`
	// PerMinute is what the mock charged per minute.
	PerMinute dims `json:"per_minute"`
	// ShareOfAPI is PerMinute / the API's limits.
	ShareOfAPI dims `json:"share_of_api"`
	// ShareOfEnforced is PerMinute / the limiter's limits (pool or fixed window); absent
	// without a limiter.
	ShareOfEnforced *dims `json:"share_of_enforced,omitempty"`
	// Binding is the dimension with the highest share.
	Binding string `json:"binding"`
}

// targetResult judges a row.
type targetResult struct {
	ZeroUpstream429 bool `json:"zero_upstream_429"`
	// ShareApplies is set for claudecap rows at 90% headroom.
	ShareApplies bool `json:"share_applies"`
	ShareMet     bool `json:"share_met"`
	StretchMet   bool `json:"stretch_met"`
	// Misses lists every target missed, in words.
	Misses []string `json:"misses"`
}

// rowResult is one row of the report.
type rowResult struct {
	Name     string  `json:"name"`
	Scenario string  `json:"scenario"`
	About    string  `json:"about"`
	Limiter  string  `json:"limiter"`
	Mode     string  `json:"mode"`
	Headroom float64 `json:"headroom"`
	Proxies  int     `json:"proxies"`
	// Outage is set when Redis is down during the row: its window spans the outage, so it is
	// judged on upstream 429s only.
	Outage bool `json:"outage,omitempty"`
	// APILimits are the mock's limits of the class; Enforced the limiter's.
	APILimits ratelimit.Limits  `json:"api_limits"`
	Enforced  *ratelimit.Limits `json:"enforced_limits,omitempty"`
	// OfferedPerMinute is the rated traffic's steady offered load, in calls per minute;
	// ExpectedBinding the dimension it was sized against.
	OfferedPerMinute float64        `json:"offered_per_minute"`
	ExpectedBinding  string         `json:"expected_binding"`
	Client           clientResult   `json:"client"`
	Upstream         upstreamResult `json:"upstream"`
	Steady           steadyResult   `json:"steady"`
	Targets          targetResult   `json:"targets"`
	Notes            []string       `json:"notes,omitempty"`
	WallSeconds      float64        `json:"wall_seconds"`
	// Trace is the row second by second; it goes to trace.json, not report.json.
	Trace []tracePoint `json:"-"`
	Error string       `json:"error,omitempty"`
}

// judge fills r.Targets.
func judge(r *rowResult) {
	t := targetResult{ZeroUpstream429: r.Upstream.RateLimited == 0, Misses: []string{}}
	if !t.ZeroUpstream429 {
		t.Misses = append(t.Misses, fmt.Sprintf("%s upstream 429s", thousands(r.Upstream.RateLimited)))
	}
	t.ShareApplies = r.Limiter == string(limiterClaudecap) && r.Headroom == targetHeadroom && !r.Outage && r.Steady.ShareOfEnforced != nil
	if t.ShareApplies {
		d := dimensionNamed(r.ExpectedBinding)
		share := r.Steady.ShareOfEnforced.get(d)
		t.ShareMet, t.StretchMet = share >= shareTarget, share >= stretchShare
		if !t.ShareMet {
			t.Misses = append(t.Misses, fmt.Sprintf("%s at %s of the pool (< %s)", d, percent(share), percent(shareTarget)))
		}
	}
	if r.Error != "" {
		t.Misses = append(t.Misses, "row failed: "+r.Error)
	}
	r.Targets = t
}

func dimensionNamed(name string) dimension {
	for d, n := range dimensionNames {
		if n == name {
			return dimension(d)
		}
	}
	return dimRequests
}

// report is the whole suite's result.
type report struct {
	Started     time.Time    `json:"started"`
	WallSeconds float64      `json:"wall_seconds"`
	Host        string       `json:"host"`
	Load        string       `json:"load_average"`
	Filter      string       `json:"filter,omitempty"`
	Rows        []*rowResult `json:"rows"`
}

// tableHeader are the Markdown table's columns.
var tableHeader = []string{
	"row", "offered", "upstream 429s", "client 429s", "client 503s",
	"requests (API · limiter)", "input tokens (API · limiter)", "output tokens (API · limiter)", "binding", "targets",
}

// tableRow renders one row's cells.
func tableRow(r *rowResult) []string {
	if r.Error != "" && r.Client.Calls == 0 {
		return []string{r.Name, "-", "-", "-", "-", "-", "-", "-", "-", "✗ row failed: " + r.Error}
	}
	up := thousands(r.Upstream.RateLimited)
	if a := r.Upstream.AfterRestart; a != nil {
		up += fmt.Sprintf(" (%s after restart)", thousands(*a))
	}
	client := thousands(r.Client.RateLimited)
	if r.Client.Calls > 0 {
		client += fmt.Sprintf(" (%s)", percent(float64(r.Client.RateLimited)/float64(r.Client.Calls)))
	}
	cells := []string{r.Name, fmt.Sprintf("%s/min", thousands(int64(math.Round(r.OfferedPerMinute)))), up, client, thousands(r.Client.Unavailable)}
	for d := range dimCount {
		cell := percent(r.Steady.ShareOfAPI.get(d)) + " · "
		if e := r.Steady.ShareOfEnforced; e != nil {
			cell += percent(e.get(d))
		} else {
			cell += "-"
		}
		cells = append(cells, cell)
	}
	binding := r.Steady.Binding
	if binding != r.ExpectedBinding {
		binding += " (sized for " + r.ExpectedBinding + ")"
	}
	targets := "met"
	if len(r.Targets.Misses) > 0 {
		targets = "✗ " + strings.Join(r.Targets.Misses, "; ✗ ")
	}
	return append(cells, binding, targets)
}

// writeMarkdown writes the legend and the table.
func writeMarkdown(w io.Writer, rep *report) error {
	var b bytes.Buffer
	fmt.Fprintf(&b, "Never-exceed suite: %d rows in %s (%s; load average %s), K=%d proxies, offered load %gx the binding limit.\n\n",
		len(rep.Rows), (time.Duration(rep.WallSeconds) * time.Second).Round(time.Second), rep.Host, rep.Load, proxies, overload)
	b.WriteString("Rows are scenario/limiter/mode[/headroom %]. Shares are what the mock charged per minute in the steady-state " +
		"window, as a share of the API's limit · of the limiter's (the pool, or the fixed window's counters). " +
		"Client 429s count the calls refused by a proxy, the API or the fixed window (share of all calls). " +
		"Targets: 0 upstream 429s in every row; in the claudecap rows at 90% headroom without a Redis outage, >= 95% of the pool's binding limit.\n\n")
	rows := make([][]string, 0, len(rep.Rows))
	for _, r := range rep.Rows {
		rows = append(rows, tableRow(r))
	}
	b.WriteString(benchenv.MarkdownTable(tableHeader, rows))
	_, err := w.Write(b.Bytes())
	return err
}

// writeReport writes report.md, report.json and trace.json (every row's trace, by name,
// unindented) into dir.
func writeReport(dir string, rep *report) error {
	var md bytes.Buffer
	if err := writeMarkdown(&md, rep); err != nil {
		return err
	}
	if err := benchenv.WriteReport(dir, md.Bytes(), rep); err != nil {
		return err
	}
	traces := make(map[string][]tracePoint, len(rep.Rows))
	for _, r := range rep.Rows {
		traces[r.Name] = r.Trace
	}
	js, err := json.Marshal(traces)
	if err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, "trace.json"), append(js, '\n'), 0o600)
}

// percent renders a share with one decimal.
func percent(f float64) string { return strconv.FormatFloat(f*100, 'f', 1, 64) + "%" }

// thousands renders n with comma separators.
func thousands(n int64) string {
	s := strconv.FormatInt(n, 10)
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	if neg {
		return "-" + b.String()
	}
	return b.String()
}
