package loadtest

import (
	"encoding/json"
	"fmt"
	"io"
	"time"
)

// SchemaVersion identifies the JSON layout of Report. Fields are only ever
// added within a version; renaming or removing one bumps it. The capacity
// planner (`claudecap plan --from-loadtest`) checks it before reading.
const SchemaVersion = "loadtest.claudecap.io/v1"

// Mode is the load model of a run.
type Mode string

const (
	// ModeOpen sends on a schedule regardless of how many requests are in
	// flight, like independent users or a queue drained at a fixed rate.
	ModeOpen Mode = "open"
	// ModeClosed keeps a fixed number of requests in flight, like a fixed
	// pool of workers that each send, wait, and send again.
	ModeClosed Mode = "closed"
	// ModeSweep runs a series of open-loop stages to find the highest rate
	// that meets a 429-ratio or latency target.
	ModeSweep Mode = "sweep"
)

// StopReason says why a run ended.
type StopReason string

const (
	// StopDuration means the configured duration elapsed.
	StopDuration StopReason = "duration"
	// StopMaxRequests means the configured request count was sent.
	StopMaxRequests StopReason = "max-requests"
	// StopProfileEnd means the rate profile ended at rate 0.
	StopProfileEnd StopReason = "profile-end"
	// StopInterrupted means the context was canceled (Ctrl-C); the report
	// is partial.
	StopInterrupted StopReason = "interrupted"
)

// Report is the result of a run. Its JSON form is the stable, documented
// output of `claudecap loadtest -o json` (see docs/loadtest.md); durations
// are in milliseconds or seconds as the field names say.
type Report struct {
	// SchemaVersion is always SchemaVersion.
	SchemaVersion string `json:"schemaVersion"`
	// StartedAt is the wall-clock start of the run.
	StartedAt time.Time `json:"startedAt"`
	// DurationSeconds runs from the start to the last completion.
	DurationSeconds float64 `json:"durationSeconds"`
	// StopReason says why the run ended.
	StopReason StopReason `json:"stopReason"`
	// Interrupted is true when the run was cut short; numbers are partial.
	Interrupted bool `json:"interrupted"`
	// Config echoes the run's settings.
	Config RunConfig `json:"config"`
	// Requests counts logical requests and HTTP attempts.
	Requests RequestCounts `json:"requests"`
	// Classes counts logical requests by final class.
	Classes map[Class]int64 `json:"classes"`
	// StatusCodes counts HTTP attempts by status ("transport" for none).
	StatusCodes map[string]int64 `json:"statusCodes"`
	// MidStreamErrors counts error events received after HTTP 200.
	MidStreamErrors int64 `json:"midStreamErrors"`
	// RetryAfter summarizes retry-after headers seen.
	RetryAfter RetryAfterStats `json:"retryAfter"`
	// Tokens totals the usage the API reported.
	Tokens TokenStats `json:"tokens"`
	// Throughput is what was achieved, per second and per minute.
	Throughput Throughput `json:"throughput"`
	// Latency holds the latency distributions.
	Latency LatencyReport `json:"latency"`
	// RateLimits holds, per dimension, the limit the headers reported and
	// the lowest remaining value seen; absent dimensions were never reported.
	RateLimits map[Dimension]LimitObservation `json:"rateLimits"`
	// PerReplicaEquivalent is the throughput one sequential worker achieves,
	// the planner's requestsPerMinutePerReplica.
	PerReplicaEquivalent ReplicaEquivalent `json:"perReplicaEquivalent"`
	// Timeline holds per-window counts and latencies, oldest first.
	Timeline []TimelineWindow `json:"timeline"`
	// ErrorSamples holds up to five distinct error messages.
	ErrorSamples []ErrorSample `json:"errorSamples"`
	// Sweep is set for sweep runs; the rest of the report then describes the
	// best passing stage (or the first stage when none passed).
	Sweep *SweepReport `json:"sweep,omitempty"`
}

// RunConfig echoes what the run was asked to do.
type RunConfig struct {
	// Mode is open, closed or sweep.
	Mode Mode `json:"mode"`
	// Arrival is the open-loop arrival process.
	Arrival Arrival `json:"arrival,omitempty"`
	// Profile is the open-loop rate profile.
	Profile []ProfileSegment `json:"profile,omitempty"`
	// Concurrency is the closed-loop worker count.
	Concurrency int `json:"concurrency,omitempty"`
	// DurationSeconds is the configured duration bound (0: none).
	DurationSeconds float64 `json:"durationSeconds,omitempty"`
	// MaxRequests is the configured request-count bound (0: none).
	MaxRequests int64 `json:"maxRequests,omitempty"`
	// Seed seeds Poisson arrivals.
	Seed uint64 `json:"seed"`
	// Target describes where and what was sent.
	Target Target `json:"target"`
}

// ProfileSegment is a Segment in the report's units.
type ProfileSegment struct {
	DurationSeconds float64 `json:"durationSeconds"`
	FromPerSecond   float64 `json:"fromPerSecond"`
	ToPerSecond     float64 `json:"toPerSecond"`
}

// Target describes the requests of a run; the runner copies it verbatim.
type Target struct {
	// BaseURL is the API base URL (it never carries credentials).
	BaseURL string `json:"baseURL,omitempty"`
	// Model is the model of the flag-built request, or "mixed".
	Model string `json:"model,omitempty"`
	// Stream says whether requests streamed.
	Stream bool `json:"stream"`
	// MaxRetries is the SDK retry budget per request (0 by default).
	MaxRetries int `json:"maxRetries"`
	// RequestSource is "flags" or the JSONL file name.
	RequestSource string `json:"requestSource,omitempty"`
	// DistinctRequests is how many request bodies were cycled through.
	DistinctRequests int `json:"distinctRequests,omitempty"`
}

// RequestCounts counts logical requests and attempts.
type RequestCounts struct {
	// Sent is the number of logical requests started.
	Sent int64 `json:"sent"`
	// Completed is the number that finished (any class).
	Completed int64 `json:"completed"`
	// Succeeded is the number with class ok.
	Succeeded int64 `json:"succeeded"`
	// Failed is the number with an error class (not ok, not canceled).
	Failed int64 `json:"failed"`
	// Canceled is the number cut short by interruption or drain timeout.
	Canceled int64 `json:"canceled"`
	// Attempts is the number of HTTP attempts (more than Sent with retries).
	Attempts int64 `json:"attempts"`
}

// RetryAfterStats summarizes retry-after headers.
type RetryAfterStats struct {
	// Seen counts attempts that carried one.
	Seen int64 `json:"seen"`
	// MinSeconds and MaxSeconds bound the values seen.
	MinSeconds float64 `json:"minSeconds"`
	MaxSeconds float64 `json:"maxSeconds"`
}

// TokenStats totals usage. Averages are over successful requests.
type TokenStats struct {
	Input         int64 `json:"input"`
	Output        int64 `json:"output"`
	CacheCreation int64 `json:"cacheCreation"`
	CacheRead     int64 `json:"cacheRead"`
	// AvgInputTokens counts every input token of a request, cached or not,
	// as the planner's traffic.avgInputTokens does.
	AvgInputTokens float64 `json:"avgInputTokens"`
	// AvgOutputTokens is output tokens per successful request.
	AvgOutputTokens float64 `json:"avgOutputTokens"`
	// CacheHitRatio is cache reads over all input tokens.
	CacheHitRatio float64 `json:"cacheHitRatio"`
}

// Throughput is what the run achieved.
type Throughput struct {
	// TargetPerSecond is the mean scheduled rate (open loop only).
	TargetPerSecond float64 `json:"targetPerSecond,omitempty"`
	// SentPerSecond is the rate at which requests actually left, measured
	// between the first and the last send.
	SentPerSecond float64 `json:"sentPerSecond"`
	// RequestsPerMinute counts HTTP attempts, as Anthropic's RPM meters them.
	RequestsPerMinute float64 `json:"requestsPerMinute"`
	// SuccessfulRequestsPerMinute counts successful logical requests.
	SuccessfulRequestsPerMinute float64 `json:"successfulRequestsPerMinute"`
	// InputTokensPerMinute counts input plus cache-creation tokens, as ITPM
	// meters them for current models.
	InputTokensPerMinute float64 `json:"inputTokensPerMinute"`
	// OutputTokensPerMinute counts output tokens.
	OutputTokensPerMinute float64 `json:"outputTokensPerMinute"`
	// OutputTokensPerSecond is the same per second.
	OutputTokensPerSecond float64 `json:"outputTokensPerSecond"`
}

// LatencyReport holds the latency distributions. In an open loop every
// latency is measured from the intended send time, so a generator or
// connection pool that falls behind shows up as latency instead of hiding
// it (no coordinated omission). Only successful requests are included.
type LatencyReport struct {
	// EndToEnd runs from the intended send to the last byte.
	EndToEnd Percentiles `json:"endToEnd"`
	// TimeToFirstToken runs from the intended send to the first content
	// delta (streaming only).
	TimeToFirstToken Percentiles `json:"timeToFirstToken"`
	// InterToken is, per request, (last delta - first delta) / (output
	// tokens - 1) (streaming only).
	InterToken Percentiles `json:"interToken"`
	// ServiceTime runs from the actual send to the last byte.
	ServiceTime Percentiles `json:"serviceTime"`
	// ScheduleLag is actual send minus intended send, for every request.
	ScheduleLag Percentiles `json:"scheduleLag"`
}

// LimitObservation is what the headers said about one dimension.
type LimitObservation struct {
	// Limit is the last limit reported.
	Limit int64 `json:"limit"`
	// MinRemaining is the lowest remaining value reported.
	MinRemaining int64 `json:"minRemaining"`
	// Responses counts responses that carried this dimension.
	Responses int64 `json:"responses"`
	// AchievedPerMinute is the run's usage of this dimension per minute.
	AchievedPerMinute float64 `json:"achievedPerMinute"`
	// Utilization is AchievedPerMinute / Limit.
	Utilization float64 `json:"utilization"`
}

// ReplicaEquivalent converts the run into what one worker replica that
// handles one request at a time would carry: throughput divided by the mean
// number of requests in flight (Little's law). Multiply by a worker's
// internal concurrency to get its requestsPerMinutePerReplica.
type ReplicaEquivalent struct {
	// MeanConcurrency is the time-averaged number of requests in flight.
	MeanConcurrency float64 `json:"meanConcurrency"`
	// RequestsPerMinute is successful requests per minute per unit of
	// concurrency.
	RequestsPerMinute float64 `json:"requestsPerMinute"`
	// InputTokensPerMinute and OutputTokensPerMinute are the same for tokens.
	InputTokensPerMinute  float64 `json:"inputTokensPerMinute"`
	OutputTokensPerMinute float64 `json:"outputTokensPerMinute"`
}

// ErrorSample is one distinct failure message.
type ErrorSample struct {
	Class   Class  `json:"class"`
	Message string `json:"message"`
	// Count is how many requests failed with this exact message.
	Count int64 `json:"count"`
}

// WriteJSON writes r as indented JSON.
func (r *Report) WriteJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	if err := enc.Encode(r); err != nil {
		return fmt.Errorf("encoding load-test report: %w", err)
	}
	return nil
}

// ReadReport parses a report written by WriteJSON and checks its schema
// version, so a reader never silently misreads a future layout.
func ReadReport(rd io.Reader) (*Report, error) {
	var r Report
	if err := json.NewDecoder(rd).Decode(&r); err != nil {
		return nil, fmt.Errorf("decoding load-test report: %w", err)
	}
	if r.SchemaVersion != SchemaVersion {
		return nil, fmt.Errorf("load-test report has schemaVersion %q, want %q", r.SchemaVersion, SchemaVersion)
	}
	return &r, nil
}

func profileSegments(p RateProfile) []ProfileSegment {
	out := make([]ProfileSegment, 0, len(p.Segments))
	for _, s := range p.Segments {
		out = append(out, ProfileSegment{DurationSeconds: s.Duration.Seconds(), FromPerSecond: s.From, ToPerSecond: s.To})
	}
	return out
}
