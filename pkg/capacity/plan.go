package capacity

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"

	"github.com/claudecap/claudecap/pkg/dimension"
)

// MinutesPerMonth is the month monthly costs assume: 30 days.
const MinutesPerMonth = 30 * 24 * 60

// DefaultPlanHeadroomPercent is the share of each limit a plan may use when PlanInput leaves
// HeadroomPercent at zero. 100 reproduces the plain "does it fit" question; the
// ClaudeCapacity resource defaults to a safer 90.
const DefaultPlanHeadroomPercent = 100

// TierCustom is PlanResult.SmallestTier when no published tier carries the traffic: the
// organization needs custom limits, which Anthropic grants through sales.
const TierCustom = "custom"

// Bounds that keep every product of the plan finite and every replica count inside int64.
// They are far beyond any real workload: context windows hold about a million tokens.
const (
	// MaxPlanRequestsPerMinute bounds PlanInput.RequestsPerMinute.
	MaxPlanRequestsPerMinute = 1e9
	// MaxPlanTokensPerRequest bounds PlanInput.AvgInputTokens and AvgOutputTokens.
	MaxPlanTokensPerRequest = 1e7
	// MinPlanReplicaRequestsPerMinute is the smallest positive per-replica throughput accepted.
	MinPlanReplicaRequestsPerMinute = 1e-3
)

// planTolerance absorbs float rounding when a need lands exactly on a limit or on a whole
// number of replicas (0.3 * 100 / 10 must be 3 replicas, not 4).
const planTolerance = 1e-9

// ErrInvalidPlanInput is wrapped by Plan when an input is out of range.
var ErrInvalidPlanInput = errors.New("invalid plan input")

// PlanDimension names one of the rate-limit dimensions by its table Name ("OutputTokens").
// The values match the ClaudeCapacity status field limitedBy.
type PlanDimension string

// PlanDimensionOf returns the PlanDimension that names d.
func PlanDimensionOf(d dimension.Dimension) PlanDimension { return PlanDimension(d.Name()) }

// PlanInput describes a workload's expected traffic. Rates are averages per minute; token
// counts are averages per request.
//
// Prompt caching is described by three shares of each request's input tokens: read from the
// cache (CacheHitRatio), written to it with a 5-minute TTL (CacheWrite5mRatio) or with a
// 1-hour TTL (CacheWrite1hRatio). The rest is plain input. Their sum must not exceed 1. With
// steady traffic a cached prefix is written once per TTL and read by every other request, so
// the write shares are usually near 0; set them for traffic that rarely reuses a prefix.
type PlanInput struct {
	// Model is a model id or alias from the catalog.
	Model string `json:"model"`
	// RequestsPerMinute is the total request rate, batch requests included.
	RequestsPerMinute float64 `json:"requestsPerMinute"`
	// AvgInputTokens is the input size of a request, cached tokens included.
	AvgInputTokens float64 `json:"avgInputTokens"`
	// AvgOutputTokens is the output size of a request.
	AvgOutputTokens float64 `json:"avgOutputTokens"`
	// CacheHitRatio is the share of input tokens read from the prompt cache, 0 to 1.
	CacheHitRatio float64 `json:"cacheHitRatio"`
	// CacheWrite5mRatio is the share of input tokens written to the cache with a 5-minute TTL.
	CacheWrite5mRatio float64 `json:"cacheWrite5mRatio"`
	// CacheWrite1hRatio is the share of input tokens written to the cache with a 1-hour TTL.
	CacheWrite1hRatio float64 `json:"cacheWrite1hRatio"`
	// BatchShare is the share of requests sent through Message Batches, 0 to 1: they cost
	// less and do not count against the Messages API's per-minute limits.
	BatchShare float64 `json:"batchShare"`
	// HeadroomPercent is the share of each limit the plan may use, above 0 and at most 100;
	// 0 means DefaultPlanHeadroomPercent.
	HeadroomPercent float64 `json:"headroomPercent"`
	// ReplicaRequestsPerMinute is what one busy worker replica completes per minute; 0 when
	// unknown, and then the plan computes no replica count.
	ReplicaRequestsPerMinute float64 `json:"replicaRequestsPerMinute,omitempty"`
	// Limits are the organization's declared limits to check the plan against; nil for none.
	Limits *PlanLimits `json:"limits,omitempty"`
}

// PlanLimits are declared limits: a tier's published limits, each dimension optionally
// replaced by an explicit value. A zero explicit value takes the tier's; without a tier it
// leaves that dimension unchecked.
type PlanLimits struct {
	// Tier names a catalog tier, or is empty. JSON "tier", left out when empty.
	Tier string
	// Explicit replaces the tier's limit in each dimension where positive. In JSON its
	// members sit beside "tier", each named by its dimension's LimitField and left out when
	// zero.
	Explicit TierLimits
}

// planLimitsTier is the JSON member of PlanLimits.Tier.
const planLimitsTier = "tier"

// MarshalJSON writes {"tier": ..., "requestsPerMinute": ..., ...}, leaving out empty members.
func (l PlanLimits) MarshalJSON() ([]byte, error) {
	explicit, err := dimension.MarshalObject(l.Explicit, dimension.LimitFieldOf, true)
	if err != nil || l.Tier == "" {
		return explicit, err
	}
	tier, err := json.Marshal(l.Tier)
	if err != nil {
		return nil, err
	}
	out := append([]byte(`{"`+planLimitsTier+`":`), tier...)
	if len(explicit) > len("{}") {
		out = append(out, ',')
	}
	return append(out, explicit[1:]...), nil
}

// UnmarshalJSON reads what MarshalJSON writes, rejecting a member it does not know.
func (l *PlanLimits) UnmarshalJSON(data []byte) error {
	extra := map[string]json.RawMessage{}
	var explicit TierLimits
	if err := dimension.UnmarshalObject(data, &explicit, dimension.LimitFieldOf, extra); err != nil {
		return err
	}
	out := PlanLimits{Explicit: explicit}
	for name, raw := range extra {
		if name != planLimitsTier {
			return fmt.Errorf("json: unknown field %q", name)
		}
		if err := json.Unmarshal(raw, &out.Tier); err != nil {
			return fmt.Errorf("field %s: %w", name, err)
		}
	}
	*l = out
	return nil
}

// PlanRates are per-minute amounts in each dimension, indexed by it, as fractions: averages
// need not be whole numbers. Input tokens are counted as the limit counts them. In JSON they
// are an object keyed by the dimensions' LimitField.
type PlanRates dimension.Rates

// MarshalJSON writes the rates as an object keyed by the dimensions' LimitField.
func (r PlanRates) MarshalJSON() ([]byte, error) {
	return dimension.MarshalObject(r, dimension.LimitFieldOf, false)
}

// UnmarshalJSON reads what MarshalJSON writes.
func (r *PlanRates) UnmarshalJSON(data []byte) error {
	return dimension.UnmarshalObject(data, r, dimension.LimitFieldOf, nil)
}

// Ceil rounds each rate up to a whole number, the form limits and status fields use.
func (r PlanRates) Ceil() TierLimits {
	var l TierLimits
	for d, v := range r {
		l[d] = int64(planCeil(v))
	}
	return l
}

// PlanUtilization is need divided by limit per dimension, indexed by it: 1 is the whole
// limit. A dimension without a limit reads 0. In JSON it is an object keyed by the
// dimensions' names in lowerCamelCase ("outputTokens").
type PlanUtilization dimension.Rates

// MarshalJSON writes the shares as an object keyed by dimension.ShareFieldOf.
func (u PlanUtilization) MarshalJSON() ([]byte, error) {
	return dimension.MarshalObject(u, dimension.ShareFieldOf, false)
}

// UnmarshalJSON reads what MarshalJSON writes.
func (u *PlanUtilization) UnmarshalJSON(data []byte) error {
	return dimension.UnmarshalObject(data, u, dimension.ShareFieldOf, nil)
}

// LimitFit is how the plan's needs sit within one set of limits.
type LimitFit struct {
	// Name is the tier name, or "declared" for limits without a tier.
	Name string `json:"name"`
	// Limits are the limits checked; a zero dimension was not checked.
	Limits TierLimits `json:"limits"`
	// Utilization is need / limit per dimension.
	Utilization PlanUtilization `json:"utilization"`
	// Fits is true when every dimension stays within limit * headroom.
	Fits bool `json:"fits"`
	// Binding is the dimension closest to its limit; empty when nothing is needed.
	Binding PlanDimension `json:"binding,omitempty"`
	// Short lists the dimensions that exceed limit * headroom.
	Short []PlanDimension `json:"short,omitempty"`
	// Reason says in words, with numbers, why the limits fit or not.
	Reason string `json:"reason"`
}

// PlanCost is what the traffic costs at list prices, in US dollars.
type PlanCost struct {
	// PerRequestUSD is the average cost of one request, batch discount included.
	PerRequestUSD float64 `json:"perRequestUSD"`
	// MonthlyUSD is the cost of MinutesPerMonth minutes at the planned rate.
	MonthlyUSD float64 `json:"monthlyUSD"`
	// MonthlyCacheSavingsUSD is what prompt caching saves per month against sending every
	// input token uncached; negative when cache writes cost more than cache reads save.
	MonthlyCacheSavingsUSD float64 `json:"monthlyCacheSavingsUSD"`
	// MonthlyBatchSavingsUSD is what Message Batches save per month.
	MonthlyBatchSavingsUSD float64 `json:"monthlyBatchSavingsUSD"`
	// LongContextPricing is true when the average input is large enough to be billed at the
	// model's long-context prices.
	LongContextPricing bool `json:"longContextPricing,omitempty"`
}

// PlanResult is what a workload needs and costs, and which limits carry it.
type PlanResult struct {
	// Model is the resolved model id.
	Model string `json:"model"`
	// Class is the model's rate-limit pool.
	Class ModelClass `json:"class"`
	// CatalogAsOf is the date of the prices and limits used.
	CatalogAsOf string `json:"catalogAsOf"`
	// Input is the input as planned, with defaults filled in.
	Input PlanInput `json:"input"`
	// Needed is what the Messages API traffic needs per minute, counted as Anthropic counts
	// it: batch requests excluded, cache reads excluded from input tokens for current models.
	Needed PlanRates `json:"needed"`
	// BatchRequestsPerMinute is the share of traffic sent through Message Batches.
	BatchRequestsPerMinute float64 `json:"batchRequestsPerMinute"`
	// CacheReadsCountTowardITPM is true when the model's cache reads use up the input-token
	// limit (older models), so Needed[dimension.InputTokens] includes them.
	CacheReadsCountTowardITPM bool `json:"cacheReadsCountTowardITPM,omitempty"`
	// InputTokensPerMinuteAll is every input token of the Messages traffic, cache reads
	// included, per minute: what the model actually reads.
	InputTokensPerMinuteAll float64 `json:"inputTokensPerMinuteAll"`
	// Cost is what the traffic costs.
	Cost PlanCost `json:"cost"`
	// Tiers is the fit within each published tier of the model class, smallest first; empty
	// when the catalog has no tier limits for the class.
	Tiers []LimitFit `json:"tiers"`
	// SmallestTier is the first tier that fits, or TierCustom.
	SmallestTier string `json:"smallestTier"`
	// Binding is the dimension closest to its limit in SmallestTier, or, when no tier fits,
	// in the largest tier.
	Binding PlanDimension `json:"binding,omitempty"`
	// TierReason says why SmallestTier was chosen.
	TierReason string `json:"tierReason"`
	// Replicas is how many workers carry the Messages traffic at ReplicaRequestsPerMinute
	// each; nil when the per-replica throughput is unknown. Batch requests are submitted in
	// bulk and take no worker call each, so they are not counted.
	Replicas *int64 `json:"replicas,omitempty"`
	// Declared is the fit within PlanInput.Limits; nil when none were given.
	Declared *LimitFit `json:"declared,omitempty"`
}

// Plan works out what a workload needs per minute, what it costs, the smallest tier that
// carries it at the headroom, and how many replicas serve it. A nil catalog means
// DefaultCatalog. Plan is pure: same input, same result.
func Plan(catalog *Catalog, in PlanInput) (PlanResult, error) {
	if catalog == nil {
		catalog = DefaultCatalog()
	}
	if in.HeadroomPercent == 0 {
		in.HeadroomPercent = DefaultPlanHeadroomPercent
	}
	if err := validatePlanInput(in); err != nil {
		return PlanResult{}, err
	}
	model, err := catalog.Model(in.Model)
	if err != nil {
		return PlanResult{}, err
	}
	if in.Limits != nil {
		copied := *in.Limits
		in.Limits = &copied
	}

	res := PlanResult{Model: model.ID, Class: model.Class, CatalogAsOf: catalog.AsOf, Input: in,
		CacheReadsCountTowardITPM: model.CacheReadsCountTowardITPM}
	res.Needed, res.BatchRequestsPerMinute, res.InputTokensPerMinuteAll = planNeeds(model, in)
	res.Cost = planCost(model, in)

	if in.ReplicaRequestsPerMinute > 0 {
		replicas := int64(planCeil(res.Needed[dimension.Requests] / in.ReplicaRequestsPerMinute))
		res.Replicas = &replicas
	}

	planTiers(catalog, model.Class, in.HeadroomPercent, &res)

	if in.Limits != nil {
		declared, err := planDeclared(catalog, model.Class, *in.Limits, res.Needed, in.HeadroomPercent)
		if err != nil {
			return PlanResult{}, err
		}
		res.Declared = &declared
	}
	return res, nil
}

// planNeeds returns the per-minute needs of the Messages API traffic, the batch request rate,
// and all input tokens per minute including cache reads.
func planNeeds(model Model, in PlanInput) (needed PlanRates, batchRPM, allInput float64) {
	messagesRPM := in.RequestsPerMinute * (1 - in.BatchShare)
	countedInput := in.AvgInputTokens * (1 - in.CacheHitRatio)
	if model.CacheReadsCountTowardITPM {
		countedInput = in.AvgInputTokens
	}
	needed = PlanRates{
		dimension.Requests:     messagesRPM,
		dimension.InputTokens:  messagesRPM * countedInput,
		dimension.OutputTokens: messagesRPM * in.AvgOutputTokens,
	}
	return needed, in.RequestsPerMinute * in.BatchShare, messagesRPM * in.AvgInputTokens
}

// planCost prices the traffic. Token counts are multiplied by prices per million tokens and
// divided by a million last, so that round inputs give round dollars.
func planCost(model Model, in PlanInput) PlanCost {
	p := model.Prices
	longContext := model.LongContext != nil && in.AvgInputTokens > float64(model.LongContext.AboveInputTokens)
	if longContext {
		scale := 0.0
		if p.InputPerMTok > 0 {
			scale = model.LongContext.InputPerMTok / p.InputPerMTok
		}
		p.CacheWrite5mPerMTok *= scale
		p.CacheWrite1hPerMTok *= scale
		p.CacheReadPerMTok *= scale
		p.InputPerMTok = model.LongContext.InputPerMTok
		p.OutputPerMTok = model.LongContext.OutputPerMTok
	}

	tokens := in.AvgInputTokens
	plainShare := math.Max(0, 1-in.CacheHitRatio-in.CacheWrite5mRatio-in.CacheWrite1hRatio)
	// Dollars per million requests.
	withCache := tokens*plainShare*p.InputPerMTok +
		tokens*in.CacheWrite5mRatio*p.CacheWrite5mPerMTok +
		tokens*in.CacheWrite1hRatio*p.CacheWrite1hPerMTok +
		tokens*in.CacheHitRatio*p.CacheReadPerMTok +
		in.AvgOutputTokens*p.OutputPerMTok
	withoutCache := tokens*p.InputPerMTok + in.AvgOutputTokens*p.OutputPerMTok

	batchFactor := 1 - in.BatchShare*p.BatchDiscount
	perMonth := in.RequestsPerMinute * MinutesPerMonth
	return PlanCost{
		PerRequestUSD:          withCache * batchFactor / 1e6,
		MonthlyUSD:             withCache * batchFactor * perMonth / 1e6,
		MonthlyCacheSavingsUSD: (withoutCache - withCache) * batchFactor * perMonth / 1e6,
		MonthlyBatchSavingsUSD: withCache * (1 - batchFactor) * perMonth / 1e6,
		LongContextPricing:     longContext,
	}
}

// planTiers fits the needs into every tier of the class and picks the smallest that fits.
func planTiers(catalog *Catalog, class ModelClass, headroom float64, res *PlanResult) {
	res.Tiers = []LimitFit{} // never nil, so JSON shows []
	smallest := -1
	for _, tier := range catalog.Tiers() {
		limits, err := catalog.Limits(class, tier)
		if err != nil {
			continue // the class has no limits for this tier
		}
		fit := fitLimits(tier, tier, limits, res.Needed, headroom)
		if fit.Fits && smallest < 0 {
			smallest = len(res.Tiers)
		}
		res.Tiers = append(res.Tiers, fit)
	}

	switch {
	case len(res.Tiers) == 0:
		res.SmallestTier = TierCustom
		res.TierReason = fmt.Sprintf("custom limits: the catalog (as of %s) has no tier limits for model class %s",
			catalog.AsOf, class)
	case smallest < 0:
		largest := res.Tiers[len(res.Tiers)-1]
		res.SmallestTier, res.Binding = TierCustom, largest.Binding
		res.TierReason = fmt.Sprintf("custom limits beyond %s: %s", largest.Name, largest.Reason)
	case smallest == 0:
		res.SmallestTier, res.Binding = res.Tiers[0].Name, res.Tiers[0].Binding
		res.TierReason = fmt.Sprintf("%s, the smallest tier, fits: %s", res.SmallestTier, res.Tiers[0].Reason)
	default:
		res.SmallestTier, res.Binding = res.Tiers[smallest].Name, res.Tiers[smallest].Binding
		res.TierReason = fmt.Sprintf("%s is the smallest tier that fits: %s", res.SmallestTier, res.Tiers[smallest-1].Reason)
	}
}

// planDeclared resolves declared limits and fits the needs into them.
func planDeclared(catalog *Catalog, class ModelClass, declared PlanLimits, needed PlanRates, headroom float64) (LimitFit, error) {
	limits, err := catalog.ResolveLimits(class, declared)
	if err != nil {
		return LimitFit{}, err
	}
	return fitLimits("declared", "the declared limits", limits, needed, headroom), nil
}

// ResolveLimits turns declared limits into the class's limits: the tier's, each replaced by
// an explicit value where one is given.
func (c *Catalog) ResolveLimits(class ModelClass, declared PlanLimits) (TierLimits, error) {
	var limits TierLimits
	if strings.TrimSpace(declared.Tier) != "" {
		tierLimits, err := c.Limits(class, declared.Tier)
		if err != nil {
			return TierLimits{}, fmt.Errorf("declared limits: %w", err)
		}
		limits = tierLimits
	}
	for d, v := range declared.Explicit {
		if v > 0 {
			limits[d] = v
		}
	}
	if limits == (TierLimits{}) {
		return TierLimits{}, fmt.Errorf("%w: declared limits name neither a tier nor any explicit value", ErrInvalidPlanInput)
	}
	return limits, nil
}

// fitLimits checks needs against limits at the headroom. A dimension fits when
// need <= limit * headroom / 100; a zero limit is not checked. title names the limits in the
// reason.
func fitLimits(name, title string, limits TierLimits, needed PlanRates, headroom float64) LimitFit {
	fit := LimitFit{Name: name, Limits: limits, Fits: true}
	var shortages []string
	highest := 0.0
	for _, d := range dimension.All() {
		need, limit := needed[d], limits[d]
		if limit <= 0 {
			continue
		}
		fit.Utilization[d] = need / float64(limit)
		if fit.Utilization[d] > highest {
			highest, fit.Binding = fit.Utilization[d], PlanDimensionOf(d)
		}
		allowed := float64(limit) * headroom / 100
		if need > allowed*(1+planTolerance) {
			fit.Fits = false
			fit.Short = append(fit.Short, PlanDimensionOf(d))
			shortages = append(shortages, fmt.Sprintf("%s %s/min needed, %s allowed", d.Words(),
				FormatQuantity(need), FormatQuantity(allowed)))
		}
	}

	at := fmt.Sprintf("%s at %s%% headroom", title, FormatQuantity(headroom))
	switch {
	case !fit.Fits:
		fit.Reason = fmt.Sprintf("the traffic exceeds %s: %s", at, strings.Join(shortages, "; "))
	case fit.Binding == "":
		fit.Reason = fmt.Sprintf("the traffic fits %s: it needs nothing", at)
	default:
		fit.Reason = fmt.Sprintf("the traffic fits %s; %s come closest to the limit at %s%%", at,
			fit.Binding.Words(), FormatQuantity(highest*100))
	}
	return fit
}

// validatePlanInput reports every out-of-range field at once, so a user fixes them in one go.
func validatePlanInput(in PlanInput) error {
	var problems []string
	check := func(ok bool, format string, args ...any) {
		if !ok {
			problems = append(problems, fmt.Sprintf(format, args...))
		}
	}
	inRange := func(v, lo, hi float64) bool { return v >= lo && v <= hi } // false for NaN
	check(strings.TrimSpace(in.Model) != "", "model is required")
	check(inRange(in.RequestsPerMinute, 0, MaxPlanRequestsPerMinute), "requests per minute must be between 0 and %s, got %v",
		FormatQuantity(MaxPlanRequestsPerMinute), in.RequestsPerMinute)
	check(inRange(in.AvgInputTokens, 0, MaxPlanTokensPerRequest), "average input tokens must be between 0 and %s, got %v",
		FormatQuantity(MaxPlanTokensPerRequest), in.AvgInputTokens)
	check(inRange(in.AvgOutputTokens, 0, MaxPlanTokensPerRequest), "average output tokens must be between 0 and %s, got %v",
		FormatQuantity(MaxPlanTokensPerRequest), in.AvgOutputTokens)
	ratios := []struct {
		name  string
		value float64
	}{
		{"cache hit ratio", in.CacheHitRatio}, {"cache write ratio (5m)", in.CacheWrite5mRatio},
		{"cache write ratio (1h)", in.CacheWrite1hRatio}, {"batch share", in.BatchShare},
	}
	ratiosInRange := true
	for _, r := range ratios {
		ratiosInRange = ratiosInRange && inRange(r.value, 0, 1)
		check(inRange(r.value, 0, 1), "%s must be between 0 and 1, got %v", r.name, r.value)
	}
	cacheShares := in.CacheHitRatio + in.CacheWrite5mRatio + in.CacheWrite1hRatio
	check(!ratiosInRange || cacheShares <= 1+planTolerance,
		"cache hit and cache write ratios are shares of the same input tokens and must add up to at most 1, got %v", cacheShares)
	check(in.HeadroomPercent > 0 && in.HeadroomPercent <= 100, "headroom must be above 0 and at most 100 percent, got %v", in.HeadroomPercent)
	check(in.ReplicaRequestsPerMinute == 0 || inRange(in.ReplicaRequestsPerMinute, MinPlanReplicaRequestsPerMinute, MaxPlanRequestsPerMinute),
		"requests per minute per replica must be 0 (unknown) or between %v and %s, got %v",
		MinPlanReplicaRequestsPerMinute, FormatQuantity(MaxPlanRequestsPerMinute), in.ReplicaRequestsPerMinute)
	if l := in.Limits; l != nil {
		check(!l.Explicit.Amounts().AnyNegative(), "declared limits must not be negative")
	}
	if len(problems) == 0 {
		return nil
	}
	return fmt.Errorf("%w: %s", ErrInvalidPlanInput, strings.Join(problems, "; "))
}

// Words names the dimension in plain words, for messages: "output tokens".
func (d PlanDimension) Words() string {
	if dim, err := dimension.Parse(string(d)); err == nil {
		return dim.Words()
	}
	return string(d)
}

// planCeil rounds up, except that a value within rounding error of a whole number is that
// number.
func planCeil(v float64) float64 {
	if r := math.Round(v); math.Abs(v-r) <= planTolerance*math.Max(1, math.Abs(v)) {
		return r
	}
	return math.Ceil(v)
}

// FormatQuantity writes a count or rate for people: thousands separators, whole numbers
// without decimals, others with at most two. 20000.000000001 is "20,000".
func FormatQuantity(v float64) string {
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return strconv.FormatFloat(v, 'f', -1, 64)
	}
	if r := math.Round(v); math.Abs(v-r) <= planTolerance*math.Max(1, math.Abs(v)) {
		return dimension.GroupThousands(strconv.FormatFloat(r+0, 'f', 0, 64)) // +0 turns -0 into 0
	}
	text := strings.TrimRight(strconv.FormatFloat(v, 'f', 2, 64), "0")
	return dimension.GroupThousands(strings.TrimSuffix(text, "."))
}

// FormatUSD writes a dollar amount: cents from one dollar up ("$19,440.00"), enough
// significant digits below that to tell small per-request costs apart ("$0.0045").
func FormatUSD(v float64) string {
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return "$" + strconv.FormatFloat(v, 'f', -1, 64)
	}
	sign := ""
	if v < 0 {
		sign, v = "-", -v
	}
	if v >= 1 || v == 0 {
		return sign + "$" + dimension.GroupThousands(strconv.FormatFloat(v, 'f', 2, 64))
	}
	// Four significant digits, trailing zeros dropped, at least two decimals.
	decimals := max(2, 3-int(math.Floor(math.Log10(v))))
	text := strings.TrimRight(strconv.FormatFloat(v, 'f', decimals, 64), "0")
	if i := strings.IndexByte(text, '.'); len(text)-i-1 < 2 {
		text += strings.Repeat("0", 2-(len(text)-i-1))
	}
	return sign + "$" + text
}
