package cli

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime/debug"
	"strings"
	"sync"
	"time"

	"github.com/anthropics/anthropic-sdk-go/v2"
	"github.com/spf13/cobra"

	"github.com/claudecap/claudecap/pkg/loadtest"
)

const (
	loadtestOutputTable = "table"
	loadtestOutputJSON  = "json"

	profileConstant = "constant"
	profileRamp     = "ramp"
	profileStep     = "step"

	defaultBaseURL = "https://api.anthropic.com"
)

// loadtestOptions is the command line of claudecap loadtest.
type loadtestOptions struct {
	mode    string
	rate    string
	arrival string
	profile string

	rampTo       string
	rampDuration time.Duration
	stepRate     string
	stepDuration time.Duration
	steps        int

	concurrency  int
	duration     time.Duration
	requests     int64
	seed         uint64
	maxInFlight  int
	drainTimeout time.Duration

	sweepMaxRate     string
	sweepGrowth      float64
	sweepRefinements int
	sweepStage       time.Duration
	sweepCooldown    time.Duration
	sweepMax429      float64
	sweepMaxP99      time.Duration

	baseURL      string
	model        string
	prompt       string
	system       string
	maxTokens    int64
	requestsFile string
	stream       bool
	retries      int
	timeout      time.Duration

	output     string
	reportPath string
	yes        bool
}

func newLoadtestCommand() *cobra.Command {
	opts := &loadtestOptions{}
	cmd := &cobra.Command{
		Use:   "loadtest",
		Short: "Load-test the Messages API (or the mock, or the proxy) and report latency, throughput and 429s",
		Long: `loadtest sends Messages API requests through the official Go SDK and reports what an
operator needs to size a fleet against Anthropic's rate limits: time to first token,
inter-token and end-to-end latency percentiles, achieved requests and tokens per minute next
to the limits the API reports in its anthropic-ratelimit-* headers, the lowest remaining
value seen, and errors split into 429 (your quota), 529 (Anthropic overloaded), other 5xx and
transport failures.

Load models:
  open    requests leave on a schedule (--rate, constant or Poisson arrivals, with a
          constant, ramp or step profile) whatever the server does; latency is measured from
          the intended send time, so nothing is hidden by a slow generator
  closed  --concurrency workers each send, wait for the answer, and send again
  sweep   open-loop stages at growing rates, then bisection, to find the highest rate that
          keeps 429s under --sweep-max-429-ratio (and p99 under --sweep-max-p99)

Every run is bounded by --duration and/or --requests and stops by itself; Ctrl-C stops it
cleanly with a partial report. SDK retries are off (--retries 0) so every attempt is counted.

Requests go only to --base-url (default $ANTHROPIC_BASE_URL, else the real API) with the key
in ANTHROPIC_API_KEY. Against the real API, runs planned above 100 requests need --yes.
The JSON output (-o json) is a stable schema that 'claudecap plan --from-loadtest' reads;
see docs/loadtest.md.`,
		Example: `  # 5 requests/s for a minute against a local mock, streaming, with an HTML report
  claudecap mock --tier tier-1 &
  ANTHROPIC_API_KEY=test claudecap loadtest --base-url http://127.0.0.1:8080 \
    --rate 5/s --duration 1m --stream --report report.html

  # 16 concurrent workers, 500 requests, prompts from a file
  claudecap loadtest --mode closed --concurrency 16 --requests 500 --requests-file prompts.jsonl

  # Ramp from 60 to 1200 requests/min over 5 minutes, Poisson arrivals, JSON for the planner
  claudecap loadtest --profile ramp --rate 60/m --ramp-to 1200/m --ramp-duration 5m \
    --arrival poisson -o json > run.json

  # Highest rate with under 1% 429s, 30 s stages from 1/s up to 40/s
  claudecap loadtest --mode sweep --rate 1/s --sweep-max-rate 40/s --sweep-stage 30s`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return opts.run(cmd)
		},
	}
	opts.addFlags(cmd)
	return cmd
}

func (o *loadtestOptions) addFlags(cmd *cobra.Command) {
	f := cmd.Flags()
	f.StringVar(&o.mode, "mode", string(loadtest.ModeOpen), "load model: open, closed or sweep")
	f.StringVar(&o.rate, "rate", "1/s", "open-loop rate (start rate of a ramp, step or sweep), e.g. 10, 10/s, 600/m")
	f.StringVar(&o.arrival, "arrival", string(loadtest.ArrivalConstant), "open-loop arrivals: constant (evenly spaced) or poisson")
	f.StringVar(&o.profile, "profile", profileConstant, "open-loop rate profile: constant, ramp or step")
	f.StringVar(&o.rampTo, "ramp-to", "", "ramp profile: rate at the end of the ramp")
	f.DurationVar(&o.rampDuration, "ramp-duration", 0, "ramp profile: length of the ramp (default --duration)")
	f.StringVar(&o.stepRate, "step-rate", "", "step profile: rate added at each step")
	f.DurationVar(&o.stepDuration, "step-duration", 30*time.Second, "step profile: length of each step")
	f.IntVar(&o.steps, "steps", 5, "step profile: number of steps")
	f.IntVar(&o.concurrency, "concurrency", 8, "closed loop: number of concurrent workers")
	f.DurationVar(&o.duration, "duration", 30*time.Second, "stop sending after this long (0: no time bound; ramp and step default to the profile's length)")
	f.Int64VarP(&o.requests, "requests", "n", 0, "stop after this many requests (0: no count bound)")
	f.Uint64Var(&o.seed, "seed", 1, "seed for Poisson arrivals")
	f.IntVar(&o.maxInFlight, "max-in-flight", loadtest.DefaultMaxInFlight, "open loop: cap on concurrent requests (waits count as latency)")
	f.DurationVar(&o.drainTimeout, "drain-timeout", loadtest.DefaultDrainTimeout, "how long requests in flight at the end may take before they are canceled")

	f.StringVar(&o.sweepMaxRate, "sweep-max-rate", "", "sweep: highest rate to try (required with --mode sweep)")
	f.Float64Var(&o.sweepGrowth, "sweep-growth", 2, "sweep: rate multiplier between passing stages")
	f.IntVar(&o.sweepRefinements, "sweep-refinements", 3, "sweep: bisection stages after the first failure")
	f.DurationVar(&o.sweepStage, "sweep-stage", 30*time.Second, "sweep: length of each stage")
	f.DurationVar(&o.sweepCooldown, "sweep-cooldown", 0, "sweep: pause between stages so rate-limit buckets refill (use 1m against real limits)")
	f.Float64Var(&o.sweepMax429, "sweep-max-429-ratio", 0.01, "sweep: highest share of attempts that may be 429s (negative: no bound)")
	f.DurationVar(&o.sweepMaxP99, "sweep-max-p99", 0, "sweep: highest end-to-end p99 latency (0: no bound)")

	f.StringVar(&o.baseURL, "base-url", "", "API base URL, the only place requests go (default $ANTHROPIC_BASE_URL, else "+defaultBaseURL+")")
	f.StringVar(&o.model, "model", "claude-sonnet-4-5", "model of the request built from flags")
	f.StringVar(&o.prompt, "prompt", "Write one sentence about rate limits.", "user message of the request built from flags")
	f.StringVar(&o.system, "system", "", "system prompt of the request built from flags")
	f.Int64Var(&o.maxTokens, "max-tokens", 256, "max_tokens of the request built from flags")
	f.StringVar(&o.requestsFile, "requests-file", "",
		"JSONL file of Messages request bodies, cycled in order (replaces --model, --prompt, --system, --max-tokens)")
	f.BoolVar(&o.stream, "stream", false, "stream responses (needed for time to first token and inter-token latency)")
	f.IntVar(&o.retries, "retries", 0, "SDK retries per request; each attempt is still counted (the SDK's own default is 2)")
	f.DurationVar(&o.timeout, "timeout", 0, "timeout of each attempt (0: the SDK's default)")

	f.StringVarP(&o.output, "output", "o", loadtestOutputTable, "output format: table or json")
	f.StringVar(&o.reportPath, "report", "", "also write a self-contained HTML report with charts to this file")
	f.BoolVar(&o.yes, "yes", false, "confirm a run of more than 100 requests against the real Anthropic API")
}

// loadPlan is what the flags describe: one run, or a sweep.
type loadPlan struct {
	run   loadtest.Config
	sweep *loadtest.SweepRun
}

func (p loadPlan) safetyPlan() loadtest.Plan {
	if p.sweep != nil {
		return loadtest.PlanOfSweep(*p.sweep)
	}
	return loadtest.PlanOf(p.run)
}

func (o *loadtestOptions) run(cmd *cobra.Command) error {
	if o.output != loadtestOutputTable && o.output != loadtestOutputJSON {
		return fmt.Errorf("unknown output format %q (want %s or %s)", o.output, loadtestOutputTable, loadtestOutputJSON)
	}
	baseURL := o.resolveBaseURL()
	if err := loadtest.ValidateBaseURL(baseURL); err != nil {
		return err
	}
	plan, err := o.buildPlan(cmd)
	if err != nil {
		return err
	}
	if err := loadtest.CheckSafety(baseURL, plan.safetyPlan(), o.yes); err != nil {
		return err
	}
	apiKey := os.Getenv("ANTHROPIC_API_KEY")
	if apiKey == "" {
		return errors.New("ANTHROPIC_API_KEY is not set (any non-empty value works with claudecap mock)")
	}
	requests, target, err := o.loadRequests()
	if err != nil {
		return err
	}
	target.BaseURL = baseURL
	sender, err := loadtest.NewSDKSender(loadtest.SDKSenderConfig{
		BaseURL: baseURL, APIKey: apiKey, Requests: requests,
		Stream: o.stream, MaxRetries: o.retries, RequestTimeout: o.timeout,
	})
	if err != nil {
		return err
	}

	tuneGCForLoad()
	out := cmd.OutOrStdout()
	progress := newProgressLine(out)
	plan.run.Target = target
	plan.run.OnProgress = progress.show

	var rep *loadtest.Report
	if plan.sweep != nil {
		plan.sweep.Base = plan.run
		rep, err = loadtest.RunSweep(cmd.Context(), *plan.sweep, sender)
	} else {
		rep, err = loadtest.Run(cmd.Context(), plan.run, sender)
	}
	progress.clear()
	if err != nil {
		return err
	}
	return o.writeOutputs(out, rep)
}

// loadGCPercent trades memory for CPU while generating load: the SDK
// allocates a few kilobytes per request, and at GOGC=400 the collector runs
// a quarter as often, which cut the generator's CPU per request by about a
// quarter in BenchmarkGenerator (docs/benchmarks.md). The heap of
// a load test is a few megabytes of histograms, so the extra memory is
// small.
const loadGCPercent = 400

// tuneGCForLoad applies loadGCPercent unless the user set GOGC.
func tuneGCForLoad() {
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(loadGCPercent)
	}
}

// resolveBaseURL applies the documented precedence: flag, environment,
// production.
func (o *loadtestOptions) resolveBaseURL() string {
	if o.baseURL != "" {
		return o.baseURL
	}
	if env := os.Getenv("ANTHROPIC_BASE_URL"); env != "" {
		return env
	}
	return defaultBaseURL
}

func (o *loadtestOptions) writeOutputs(out io.Writer, rep *loadtest.Report) error {
	if o.reportPath != "" {
		var page bytes.Buffer
		if err := rep.WriteHTML(&page); err != nil {
			return err
		}
		if err := os.WriteFile(filepath.Clean(o.reportPath), page.Bytes(), 0o600); err != nil {
			return fmt.Errorf("writing HTML report: %w", err)
		}
	}
	var err error
	if o.output == loadtestOutputJSON {
		err = rep.WriteJSON(out)
	} else {
		err = rep.WriteSummary(out)
	}
	if err != nil {
		return err
	}
	if rep.Requests.Sent > 0 && rep.Requests.Succeeded == 0 && !rep.Interrupted {
		return errors.New("no request succeeded; see the errors in the report")
	}
	return nil
}

// buildPlan turns the load flags into a run or a sweep.
func (o *loadtestOptions) buildPlan(cmd *cobra.Command) (loadPlan, error) {
	arrival, err := loadtest.ParseArrival(o.arrival)
	if err != nil {
		return loadPlan{}, err
	}
	rate, err := loadtest.ParseRate(o.rate)
	if err != nil {
		return loadPlan{}, fmt.Errorf("--rate: %w", err)
	}
	cfg := loadtest.Config{
		Arrival:      arrival,
		Seed:         o.seed,
		Duration:     o.duration,
		MaxRequests:  o.requests,
		MaxInFlight:  o.maxInFlight,
		DrainTimeout: o.drainTimeout,
	}
	switch loadtest.Mode(o.mode) {
	case loadtest.ModeClosed:
		cfg.Mode = loadtest.ModeClosed
		cfg.Concurrency = o.concurrency
	case loadtest.ModeOpen:
		cfg.Mode = loadtest.ModeOpen
		profile, err := o.buildProfile(rate)
		if err != nil {
			return loadPlan{}, err
		}
		cfg.Profile = profile
		if o.profile != profileConstant && !cmd.Flags().Changed("duration") {
			cfg.Duration = profile.Length()
		}
	case loadtest.ModeSweep:
		sweep, err := o.buildSweep(rate)
		if err != nil {
			return loadPlan{}, err
		}
		return loadPlan{run: cfg, sweep: sweep}, nil
	default:
		return loadPlan{}, fmt.Errorf("unknown --mode %q (want open, closed or sweep)", o.mode)
	}
	if err := cfg.Validate(); err != nil {
		return loadPlan{}, err
	}
	return loadPlan{run: cfg}, nil
}

func (o *loadtestOptions) buildProfile(rate float64) (loadtest.RateProfile, error) {
	var p loadtest.RateProfile
	switch o.profile {
	case profileConstant:
		p = loadtest.ConstantProfile(rate)
	case profileRamp:
		if o.rampTo == "" {
			return p, errors.New("--profile ramp needs --ramp-to")
		}
		to, err := loadtest.ParseRate(o.rampTo)
		if err != nil {
			return p, fmt.Errorf("--ramp-to: %w", err)
		}
		length := o.rampDuration
		if length <= 0 {
			length = o.duration
		}
		p = loadtest.RampProfile(rate, to, length)
	case profileStep:
		if o.stepRate == "" {
			return p, errors.New("--profile step needs --step-rate")
		}
		step, err := loadtest.ParseRate(o.stepRate)
		if err != nil {
			return p, fmt.Errorf("--step-rate: %w", err)
		}
		if o.steps < 1 {
			return p, fmt.Errorf("--steps must be at least 1, got %d", o.steps)
		}
		p = loadtest.StepProfile(rate, step, o.stepDuration, o.steps)
	default:
		return p, fmt.Errorf("unknown --profile %q (want constant, ramp or step)", o.profile)
	}
	return p, p.Validate()
}

func (o *loadtestOptions) buildSweep(start float64) (*loadtest.SweepRun, error) {
	if o.sweepMaxRate == "" {
		return nil, errors.New("--mode sweep needs --sweep-max-rate")
	}
	maxRate, err := loadtest.ParseRate(o.sweepMaxRate)
	if err != nil {
		return nil, fmt.Errorf("--sweep-max-rate: %w", err)
	}
	s := &loadtest.SweepRun{
		StageDuration: o.sweepStage,
		Cooldown:      o.sweepCooldown,
		Sweep: loadtest.SweepConfig{
			StartRate:   start,
			MaxRate:     maxRate,
			Growth:      o.sweepGrowth,
			Refinements: o.sweepRefinements,
			Target:      loadtest.SweepTarget{Max429Ratio: o.sweepMax429, MaxP99: o.sweepMaxP99},
		},
	}
	if err := s.Validate(); err != nil {
		return nil, err
	}
	return s, nil
}

// loadRequests reads the JSONL file or builds the one request from flags.
func (o *loadtestOptions) loadRequests() ([]anthropic.MessageNewParams, loadtest.Target, error) {
	target := loadtest.Target{Stream: o.stream, MaxRetries: o.retries}
	if o.requestsFile == "" {
		p, err := loadtest.RequestSpec{Model: o.model, MaxTokens: o.maxTokens, Prompt: o.prompt, System: o.system}.Build()
		if err != nil {
			return nil, target, err
		}
		target.Model, target.RequestSource, target.DistinctRequests = o.model, "flags", 1
		return []anthropic.MessageNewParams{p}, target, nil
	}
	f, err := os.Open(filepath.Clean(o.requestsFile))
	if err != nil {
		return nil, target, fmt.Errorf("opening request file: %w", err)
	}
	defer func() { _ = f.Close() }() // Read-only; a close error loses nothing.
	reqs, err := loadtest.ReadRequestsJSONL(f)
	if err != nil {
		return nil, target, err
	}
	target.Model = reqs[0].Model
	for _, r := range reqs[1:] {
		if r.Model != reqs[0].Model {
			target.Model = "mixed"
			break
		}
	}
	target.RequestSource, target.DistinctRequests = filepath.Base(o.requestsFile), len(reqs)
	return reqs, target, nil
}

// progressLine rewrites one terminal line about once a second. It stays
// silent unless stdout is a terminal, so pipes and files get only the
// report.
type progressLine struct {
	mu      sync.Mutex
	w       io.Writer
	enabled bool
	shown   bool
}

func newProgressLine(w io.Writer) *progressLine {
	return &progressLine{w: w, enabled: isTerminal(w)}
}

func (p *progressLine) show(pr loadtest.Progress) {
	if !p.enabled {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	_, _ = fmt.Fprintf(p.w, "\r%s\033[K", loadtest.FormatProgress(pr)) // Best effort: a lost progress line is harmless.
	p.shown = true
}

func (p *progressLine) clear() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.shown {
		_, _ = io.WriteString(p.w, "\r\033[K") // Best effort, as above.
		p.shown = false
	}
}

// isTerminal reports whether w is a character device such as a terminal.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	info, err := f.Stat()
	return err == nil && info.Mode()&os.ModeCharDevice != 0 && !strings.Contains(os.Getenv("TERM"), "dumb")
}
