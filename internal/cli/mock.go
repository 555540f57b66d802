package cli

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/claudecap/claudecap/pkg/capacity"
	"github.com/claudecap/claudecap/pkg/dimension"
	"github.com/claudecap/claudecap/pkg/mockapi"
)

// mockOptions are the flags of `claudecap mock`.
type mockOptions struct {
	listen         string
	tier           string
	limits         []string
	otpmMode       string
	limitsPerKey   bool
	countTokensRPM int64
	accel          bool
	accelGrowth    float64
	accelFloor     int64
	ttft           string
	perToken       string
	tokensPerDelta int
	outputTokens   string
	faults         mockapi.Faults
	minCacheable   int64
	seed           uint64
	apiKeys        []string
	catalog        string
	timeouts       serverTimeouts
}

func newMockCommand() *cobra.Command { return mockCommand(&mockOptions{}) }

// mockCommand builds the command around o, which its flags fill.
func mockCommand(o *mockOptions) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "mock",
		Short: "Run a local Messages API with tier rate limits",
		Long: `Run a local stand-in for Anthropic's Messages API: POST /v1/messages (plain and
streaming), POST /v1/messages/count_tokens and GET /v1/models, with the API's
headers and errors, tier rate limits (continuously refilled buckets per model
class, anthropic-ratelimit-* headers, 429 with retry-after), a seeded latency
and output-length model, fault injection and prompt caching.

GET /mock/stats shows its counters; POST /mock/stats/reset zeroes them and
POST /mock/reset also refills the buckets and empties the cache.

Distributions are "0", "fixed:V", "uniform:MIN,MAX", "normal:MEAN,SD",
"lognormal:MEAN,SD" or "exp:MEAN"; latencies take Go durations.

Examples:
  claudecap mock                                   # tier-1 limits, no latency
  claudecap mock --tier unlimited                  # a fast target for load generators
  claudecap mock --ttft normal:600ms,150ms --per-token normal:12ms,3ms
  claudecap mock --limit sonnet-4=1000/450000/90000 --fault-overloaded 0.02`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := o.config()
			if err != nil {
				return err
			}
			if err := o.timeouts.validate(); err != nil {
				return err
			}
			return runMock(cmd.Context(), cmd, o.listen, o.timeouts, cfg)
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.listen, "listen", mockapi.DefaultListenAddr, "address to listen on")
	f.StringVar(&o.tier, "tier", "tier-1", `usage tier whose limits apply to every model class ("tier-1".."tier-4", or "unlimited")`)
	f.StringArrayVar(&o.limits, "limit", nil, "explicit limits of a model class as CLASS=RPM/ITPM/OTPM (0 = not limited); repeatable")
	f.StringVar(&o.otpmMode, "otpm-mode", string(mockapi.OTPMCountActual),
		`"actual" (output counted as generated) or "reserve" (max_tokens reserved, corrected at the end)`)
	f.BoolVar(&o.limitsPerKey, "limits-per-key", false, "give every API key its own buckets (as separate organizations)")
	f.Int64Var(&o.countTokensRPM, "count-tokens-rpm", 0, "requests per minute of count_tokens (0: the tier's)")
	f.BoolVar(&o.accel, "acceleration", false, "enforce the acceleration limit: a minute may have at most floor + growth x the previous minute's requests")
	f.Float64Var(&o.accelGrowth, "acceleration-growth", 2, "allowed minute-over-minute growth of requests")
	f.Int64Var(&o.accelFloor, "acceleration-floor", 0, "requests per minute always allowed (0: a quarter of the RPM limit)")
	f.StringVar(&o.ttft, "ttft", "0", "time-to-first-token distribution (durations)")
	f.StringVar(&o.perToken, "per-token", "0", "per-output-token time distribution (durations)")
	f.IntVar(&o.tokensPerDelta, "tokens-per-delta", 1, "output tokens per streamed text_delta")
	f.StringVar(&o.outputTokens, "output-tokens", "normal:200,50", "output length distribution (tokens), capped by max_tokens")
	f.Float64Var(&o.faults.Overloaded, "fault-overloaded", 0, "share of message requests answered 529 overloaded_error")
	f.Float64Var(&o.faults.APIError, "fault-api-error", 0, "share of message requests answered 500 api_error")
	f.Float64Var(&o.faults.Dropped, "fault-dropped", 0, "share of message requests whose connection is dropped")
	f.Float64Var(&o.faults.StreamError, "fault-stream-error", 0, "share of streams cut by an error event")
	f.Int64Var(&o.minCacheable, "min-cacheable-tokens", mockapi.DefaultMinCacheableTokens, "shortest prefix prompt caching stores (negative: caching off)")
	f.Uint64Var(&o.seed, "seed", 1, "seed of latencies, output lengths and faults")
	f.StringArrayVar(&o.apiKeys, "api-key", nil, "accept only this API key (repeatable; default: any key)")
	f.StringVar(&o.catalog, "catalog", "", "model catalog file layered on the built-in one")
	o.timeouts.addFlags(f)
	return cmd
}

// config turns flags into a mock configuration.
func (o *mockOptions) config() (mockapi.Config, error) {
	cfg := mockapi.Config{
		Tier:               o.tier,
		OTPMMode:           mockapi.OTPMMode(o.otpmMode),
		LimitsPerAPIKey:    o.limitsPerKey,
		CountTokensRPM:     o.countTokensRPM,
		Acceleration:       mockapi.Acceleration{Enabled: o.accel, MaxGrowth: o.accelGrowth, Floor: o.accelFloor},
		Latency:            mockapi.Latency{TokensPerDelta: o.tokensPerDelta},
		Faults:             o.faults,
		MinCacheableTokens: o.minCacheable,
		Seed:               o.seed,
		APIKeys:            o.apiKeys,
	}
	var err error
	if cfg.Latency.TimeToFirstToken, err = mockapi.ParseDurationDistribution(o.ttft); err != nil {
		return cfg, fmt.Errorf("--ttft: %w", err)
	}
	if cfg.Latency.PerToken, err = mockapi.ParseDurationDistribution(o.perToken); err != nil {
		return cfg, fmt.Errorf("--per-token: %w", err)
	}
	if cfg.OutputTokens, err = mockapi.ParseCountDistribution(o.outputTokens); err != nil {
		return cfg, fmt.Errorf("--output-tokens: %w", err)
	}
	if cfg.OutputTokens == (mockapi.Distribution{}) {
		return cfg, errors.New("--output-tokens: a response needs at least one token; use fixed:1 for the shortest")
	}
	for _, l := range o.limits {
		class, limits, err := parseClassLimits(l)
		if err != nil {
			return cfg, fmt.Errorf("--limit %q: %w", l, err)
		}
		if cfg.Limits == nil {
			cfg.Limits = map[string]mockapi.Limits{}
		}
		cfg.Limits[class] = limits
	}
	if o.catalog != "" {
		if cfg.Catalog, err = capacity.LoadCatalog(o.catalog); err != nil {
			return cfg, err
		}
	}
	return cfg, nil
}

// parseClassLimits reads CLASS=RPM/ITPM/OTPM.
func parseClassLimits(s string) (string, mockapi.Limits, error) {
	class, vals, ok := strings.Cut(s, "=")
	parts := strings.Split(vals, "/")
	if !ok || strings.TrimSpace(class) == "" || len(parts) != dimension.Count {
		return "", mockapi.Limits{}, errors.New("want CLASS=RPM/ITPM/OTPM, for example sonnet-4=1000/450000/90000")
	}
	var n dimension.Amounts // in table order
	for i, p := range parts {
		v, err := strconv.ParseInt(strings.ReplaceAll(strings.TrimSpace(p), "_", ""), 10, 64)
		if err != nil || v < 0 {
			return "", mockapi.Limits{}, fmt.Errorf("limit %q is not a non-negative integer", p)
		}
		n[i] = v
	}
	return strings.TrimSpace(class), mockapi.LimitsOf(n), nil
}

// runMock serves the mock on addr, within timeouts, until ctx ends.
func runMock(ctx context.Context, cmd *cobra.Command, addr string, timeouts serverTimeouts, cfg mockapi.Config) error {
	srv, err := mockapi.New(cfg)
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("listening on %s: %w", addr, err)
	}
	hs := timeouts.server(srv)
	eff := srv.Config()
	limits := "no rate limits"
	if eff.Tier != "" {
		limits = eff.Tier + " limits"
	}
	if len(eff.Limits) > 0 {
		limits += fmt.Sprintf(" (%d class(es) explicit)", len(eff.Limits))
	}
	_, _ = fmt.Fprintf(cmd.OutOrStdout(), "claudecap mock listening on http://%s with %s, OTPM mode %s; stats at http://%s/mock/stats\n",
		ln.Addr(), limits, eff.OTPMMode, ln.Addr())

	errc := make(chan error, 1)
	go func() { errc <- hs.Serve(ln) }()
	select {
	case err := <-errc:
		return fmt.Errorf("serving the mock API: %w", err)
	case <-ctx.Done():
	}
	shutdown, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := hs.Shutdown(shutdown); err != nil {
		return fmt.Errorf("stopping the mock API: %w", err)
	}
	return nil
}
