package mockapi

import (
	"errors"
	"fmt"
	"math"

	"github.com/claudecap/claudecap/pkg/capacity"
	"github.com/claudecap/claudecap/pkg/dimension"
)

// OTPMMode is how output tokens are charged against the output-tokens-per-
// minute limit; Anthropic's documentation has described both.
type OTPMMode string

const (
	// OTPMCountActual counts output tokens as they are generated; max_tokens
	// does not count (Anthropic's documentation as of April 2026). A request
	// is admitted while the output bucket holds at least one token, and the
	// tokens it produces are charged when it ends, which may leave the
	// bucket in debt.
	OTPMCountActual OTPMMode = "actual"
	// OTPMReserveMaxTokens reserves max_tokens when the request starts and
	// corrects to the actual count when it ends (2025 documentation). A
	// reservation is capped at the bucket's capacity, so a max_tokens above
	// the limit still runs when the bucket is full.
	OTPMReserveMaxTokens OTPMMode = "reserve"
)

// TierUnlimited turns rate limiting off entirely, as does an empty Tier with
// no explicit Limits.
const TierUnlimited = "unlimited"

// DefaultListenAddr is where `claudecap mock` listens unless told otherwise.
const DefaultListenAddr = "127.0.0.1:8080"

// DefaultMinCacheableTokens is the shortest prefix the mock caches, the
// minimum Anthropic documents for Sonnet and Opus 4 models.
const DefaultMinCacheableTokens = 1024

// Limits are per-minute limits of one model class. A zero field means that
// dimension is not limited (and its headers are not sent).
type Limits struct {
	// RequestsPerMinute is the RPM limit.
	RequestsPerMinute int64 `json:"requests_per_minute"`
	// InputTokensPerMinute is the ITPM limit (input plus cache creation
	// tokens; cache reads too for older models).
	InputTokensPerMinute int64 `json:"input_tokens_per_minute"`
	// OutputTokensPerMinute is the OTPM limit.
	OutputTokensPerMinute int64 `json:"output_tokens_per_minute"`
}

// LimitsOf returns the limits whose Amounts are a. With Amounts it is the one place the
// config's named fields meet the dimension table.
func LimitsOf(a dimension.Amounts) Limits {
	return Limits{
		RequestsPerMinute:     a[dimension.Requests],
		InputTokensPerMinute:  a[dimension.InputTokens],
		OutputTokensPerMinute: a[dimension.OutputTokens],
	}
}

// Amounts returns the limits per dimension.
func (l Limits) Amounts() dimension.Amounts {
	return dimension.Amounts{
		dimension.Requests:     l.RequestsPerMinute,
		dimension.InputTokens:  l.InputTokensPerMinute,
		dimension.OutputTokens: l.OutputTokensPerMinute,
	}
}

func (l Limits) validate() error {
	for _, v := range l.Amounts() {
		if v < 0 || v > MaxLimit {
			return fmt.Errorf("limit %d is outside 0..%d", v, int64(MaxLimit))
		}
	}
	return nil
}

// Acceleration is the optional acceleration limit. Anthropic answers a sharp
// rise in traffic with 429s below the limits but publishes no threshold; the
// mock's rule is: the requests admitted for a model class in the current
// sliding minute may not exceed Floor + MaxGrowth x the requests admitted in
// the minute before it. Refusals name the "acceleration" dimension and carry
// retry-after: 1 (the window moves by the second).
type Acceleration struct {
	// Enabled turns the rule on.
	Enabled bool `json:"enabled"`
	// MaxGrowth is the allowed minute-over-minute growth factor (default 2).
	MaxGrowth float64 `json:"max_growth"`
	// Floor is the number of requests per minute always allowed, so traffic
	// can start from nothing (default: a quarter of the class's RPM limit,
	// or 10 when requests are not limited).
	Floor int64 `json:"floor"`
}

// Latency is the timing model of a successful message. A zero Latency
// answers at once.
type Latency struct {
	// TimeToFirstToken is drawn once per request, in seconds: the wait before
	// the response (or, streaming, its first event).
	TimeToFirstToken Distribution `json:"time_to_first_token"`
	// PerToken is drawn for every output token after the first, in seconds.
	PerToken Distribution `json:"per_token"`
	// TokensPerDelta is how many output tokens each streamed text_delta
	// carries (default 1).
	TokensPerDelta int `json:"tokens_per_delta"`
}

// Faults are injection rates, each a probability in [0, 1] per message
// request; their sum must not exceed 1 (one roll decides at most one fault).
type Faults struct {
	// Overloaded answers 529 overloaded_error before any work.
	Overloaded float64 `json:"overloaded"`
	// APIError answers 500 api_error before any work.
	APIError float64 `json:"api_error"`
	// Dropped closes the connection without a response (streaming: midway
	// through the stream).
	Dropped float64 `json:"dropped"`
	// StreamError sends `event: error` (overloaded_error) midway through a
	// stream after HTTP 200; applies to streaming requests only.
	StreamError float64 `json:"stream_error"`
}

func (f Faults) validate() error {
	sum := 0.0
	for _, p := range [...]float64{f.Overloaded, f.APIError, f.Dropped, f.StreamError} {
		if math.IsNaN(p) || p < 0 || p > 1 {
			return fmt.Errorf("fault rate %g is outside 0..1", p)
		}
		sum += p
	}
	if sum > 1 {
		return fmt.Errorf("fault rates add up to %g, more than 1", sum)
	}
	return nil
}

// Config configures a mock server. The zero Config is a mock with no rate
// limits, no latency, no faults and prompt caching on: the fastest setup, for
// benchmarks and plain compatibility tests.
type Config struct {
	// Tier selects the catalog's limits for every model class ("tier-1" to
	// "tier-4"); "" or "unlimited" means no limits except those in Limits.
	Tier string `json:"tier"`
	// Limits sets explicit limits for model classes (keys are class names
	// such as "sonnet-4"), replacing the tier's limits for those classes.
	Limits map[string]Limits `json:"limits,omitempty"`
	// OTPMMode is how output tokens are charged (default OTPMCountActual).
	OTPMMode OTPMMode `json:"otpm_mode"`
	// LimitsPerAPIKey gives every API key its own buckets, as if each key
	// were a separate organization. By default all keys share them, as keys
	// of one organization do.
	LimitsPerAPIKey bool `json:"limits_per_api_key"`
	// CountTokensRPM limits /v1/messages/count_tokens, which has its own
	// request limit. 0 takes the tier's (100, 2,000, 4,000, 8,000 for tiers
	// 1 to 4), or none without a tier.
	CountTokensRPM int64 `json:"count_tokens_rpm"`
	// Acceleration is the optional acceleration limit.
	Acceleration Acceleration `json:"acceleration"`
	// Latency is the timing model.
	Latency Latency `json:"latency"`
	// OutputTokens is the distribution of output lengths, capped by each
	// request's max_tokens (default normal:200,50; at least 1 token).
	OutputTokens Distribution `json:"output_tokens"`
	// Faults are the fault injection rates.
	Faults Faults `json:"faults"`
	// MinCacheableTokens is the shortest prefix prompt caching stores
	// (default DefaultMinCacheableTokens); negative turns caching off.
	MinCacheableTokens int64 `json:"min_cacheable_tokens"`
	// Seed makes latencies, output lengths and faults repeatable.
	Seed uint64 `json:"seed"`
	// APIKeys, when set, are the only keys accepted; others get 401.
	APIKeys []string `json:"-"`
	// Clock is the time source (default RealClock).
	Clock Clock `json:"-"`
	// Catalog maps models to classes and tiers to limits (default
	// capacity.DefaultCatalog()).
	Catalog *capacity.Catalog `json:"-"`
}

// countTokensRPMByTier is the documented count_tokens request limit per tier
// (April 2026).
var countTokensRPMByTier = map[string]int64{"tier-1": 100, "tier-2": 2000, "tier-3": 4000, "tier-4": 8000}

// defaultOutputTokens is the output length distribution when none is set.
var defaultOutputTokens = Distribution{Kind: DistNormal, Mean: 200, StdDev: 50}

// withDefaults fills unset fields and checks the rest.
func (c Config) withDefaults() (Config, error) {
	if c.Clock == nil {
		c.Clock = RealClock{}
	}
	if c.Catalog == nil {
		c.Catalog = capacity.DefaultCatalog()
	}
	if c.Tier == TierUnlimited {
		c.Tier = ""
	}
	if c.Tier != "" {
		if !isKnownTier(c.Catalog, c.Tier) {
			return c, fmt.Errorf("unknown tier %q: want one of %v or %q", c.Tier, c.Catalog.Tiers(), TierUnlimited)
		}
		if c.CountTokensRPM == 0 {
			c.CountTokensRPM = countTokensRPMByTier[c.Tier]
		}
	}
	for class, l := range c.Limits {
		if err := l.validate(); err != nil {
			return c, fmt.Errorf("limits of model class %s: %w", class, err)
		}
	}
	if c.CountTokensRPM < 0 || c.CountTokensRPM > MaxLimit {
		return c, fmt.Errorf("count_tokens RPM %d is outside 0..%d", c.CountTokensRPM, int64(MaxLimit))
	}
	switch c.OTPMMode {
	case "":
		c.OTPMMode = OTPMCountActual
	case OTPMCountActual, OTPMReserveMaxTokens:
	default:
		return c, fmt.Errorf("unknown OTPM mode %q (want %q or %q)", c.OTPMMode, OTPMCountActual, OTPMReserveMaxTokens)
	}
	if c.Acceleration.MaxGrowth == 0 {
		c.Acceleration.MaxGrowth = 2
	}
	if c.Acceleration.MaxGrowth < 1 || math.IsInf(c.Acceleration.MaxGrowth, 0) || c.Acceleration.Floor < 0 {
		return c, errors.New("acceleration: max growth must be at least 1 and floor non-negative")
	}
	if c.Latency.TokensPerDelta == 0 {
		c.Latency.TokensPerDelta = 1
	}
	if c.Latency.TokensPerDelta < 0 {
		return c, errors.New("latency: tokens per delta must be positive")
	}
	if err := c.Latency.TimeToFirstToken.Validate(); err != nil {
		return c, fmt.Errorf("latency: time to first token: %w", err)
	}
	if err := c.Latency.PerToken.Validate(); err != nil {
		return c, fmt.Errorf("latency: per token: %w", err)
	}
	if c.OutputTokens == (Distribution{}) {
		c.OutputTokens = defaultOutputTokens
	}
	if err := c.OutputTokens.Validate(); err != nil {
		return c, fmt.Errorf("output tokens: %w", err)
	}
	if err := c.Faults.validate(); err != nil {
		return c, fmt.Errorf("faults: %w", err)
	}
	if c.MinCacheableTokens == 0 {
		c.MinCacheableTokens = DefaultMinCacheableTokens
	}
	return c, nil
}

func isKnownTier(cat *capacity.Catalog, tier string) bool {
	for _, t := range cat.Tiers() {
		if t == tier {
			return true
		}
	}
	return false
}

// limitsFor resolves the limits of a model class: explicit Limits win, then
// the tier's, else none.
func (c *Config) limitsFor(class capacity.ModelClass) (Limits, error) {
	if l, ok := c.Limits[string(class)]; ok {
		return l, nil
	}
	if c.Tier == "" {
		return Limits{}, nil
	}
	tl, err := c.Catalog.Limits(class, c.Tier)
	if err != nil {
		return Limits{}, fmt.Errorf("limits of model class %s: %w", class, err)
	}
	return LimitsOf(tl.Amounts()), nil
}
