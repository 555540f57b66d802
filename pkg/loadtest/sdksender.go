package loadtest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"sync"
	"time"

	"github.com/anthropics/anthropic-sdk-go/v2"
	"github.com/anthropics/anthropic-sdk-go/v2/option"
)

// SDKSenderConfig configures the Sender that goes through the official Go
// SDK, the same client a user's workers run.
type SDKSenderConfig struct {
	// BaseURL is the only place requests go; required.
	BaseURL string
	// APIKey is sent the way the SDK sends it (a bearer token in SDK v2);
	// required. It is never logged or reported.
	APIKey string
	// Requests are cycled through in order; at least one.
	Requests []anthropic.MessageNewParams
	// Stream selects Messages.NewStreaming.
	Stream bool
	// MaxRetries is the SDK's retry budget. The default 0 makes every
	// attempt visible to the test; set 2 to measure what the SDK's default
	// behavior costs in requests per minute.
	MaxRetries int
	// RequestTimeout bounds each attempt; 0 keeps the SDK's default
	// (10 minutes for non-streaming calls, none for streams).
	RequestTimeout time.Duration
	// HTTPClient overrides the tuned default client (tests only).
	HTTPClient *http.Client
}

// SDKSender sends Messages requests with anthropic-sdk-go and reads every
// attempt's status and rate-limit headers through a middleware.
type SDKSender struct {
	client   anthropic.Client
	requests []anthropic.MessageNewParams
	stream   bool
}

// NewSDKSender checks the configuration and builds the client. Environment
// defaults of the SDK (ANTHROPIC_BASE_URL, profiles, custom headers) are
// switched off so that the base URL given here is the only destination.
func NewSDKSender(cfg SDKSenderConfig) (*SDKSender, error) {
	if err := ValidateBaseURL(cfg.BaseURL); err != nil {
		return nil, err
	}
	if cfg.APIKey == "" {
		return nil, errors.New("an API key is required")
	}
	if len(cfg.Requests) == 0 {
		return nil, errors.New("at least one request is required")
	}
	if cfg.MaxRetries < 0 {
		return nil, fmt.Errorf("max retries must be >= 0, got %d", cfg.MaxRetries)
	}
	hc := cfg.HTTPClient
	if hc == nil {
		hc = NewHTTPClient()
	}
	opts := []option.RequestOption{
		option.WithoutEnvironmentDefaults(),
		option.WithBaseURL(cfg.BaseURL),
		option.WithAPIKey(cfg.APIKey),
		option.WithHTTPClient(hc),
		option.WithMaxRetries(cfg.MaxRetries),
		option.WithMiddleware(recordAttempt),
	}
	if cfg.RequestTimeout > 0 {
		opts = append(opts, option.WithRequestTimeout(cfg.RequestTimeout))
	}
	return &SDKSender{
		client:   anthropic.NewClient(opts...),
		requests: cfg.Requests,
		stream:   cfg.Stream,
	}, nil
}

// ValidateBaseURL accepts an absolute http(s) URL without credentials, query
// or fragment. Anything secret in the URL would end up in error messages and
// reports, and the SDK appends paths to it, so a query has no use.
func ValidateBaseURL(raw string) error {
	u, err := url.Parse(raw)
	if err != nil {
		// url.Error repeats the whole URL, which may hold a secret.
		var uerr *url.Error
		if errors.As(err, &uerr) {
			err = uerr.Err
		}
		return fmt.Errorf("base URL is not a valid URL: %w", err)
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return fmt.Errorf("base URL must start with http:// or https:// (scheme is %q)", u.Scheme)
	}
	if u.Host == "" {
		return errors.New("base URL has no host")
	}
	if u.User != nil {
		return errors.New("base URL must not contain credentials; pass the key in ANTHROPIC_API_KEY")
	}
	if u.RawQuery != "" || u.Fragment != "" {
		return errors.New("base URL must not have a query or fragment")
	}
	return nil
}

// NewHTTPClient returns the client the load tester uses: keep-alive pools
// large enough that an open loop does not churn connections, and no
// redirects, so a request (and its x-api-key header) can never be sent to
// a host other than the base URL's.
func NewHTTPClient() *http.Client {
	dialer := &net.Dialer{Timeout: 30 * time.Second, KeepAlive: 30 * time.Second}
	t := &http.Transport{
		Proxy:                 http.ProxyFromEnvironment,
		DialContext:           dialer.DialContext,
		ForceAttemptHTTP2:     true,
		MaxIdleConns:          0,
		MaxIdleConnsPerHost:   DefaultMaxInFlight,
		IdleConnTimeout:       90 * time.Second,
		TLSHandshakeTimeout:   10 * time.Second,
		ExpectContinueTimeout: time.Second,
	}
	return &http.Client{
		Transport: t,
		CheckRedirect: func(*http.Request, []*http.Request) error {
			return http.ErrUseLastResponse
		},
	}
}

// attemptLog collects the attempts of one logical request. The SDK calls
// the middleware once per attempt, on the request's context, so the log
// travels in the context.
type attemptLog struct {
	mu       sync.Mutex
	attempts []Attempt
}

type attemptLogKey struct{}

func (l *attemptLog) add(a Attempt) {
	l.mu.Lock()
	l.attempts = append(l.attempts, a)
	l.mu.Unlock()
}

func (l *attemptLog) snapshot() []Attempt {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]Attempt(nil), l.attempts...)
}

// recordAttempt is the SDK middleware that records status and headers.
func recordAttempt(req *http.Request, next option.MiddlewareNext) (*http.Response, error) {
	res, err := next(req)
	if log, ok := req.Context().Value(attemptLogKey{}).(*attemptLog); ok {
		a := Attempt{RetryAfter: -1}
		if res != nil {
			a.Status = res.StatusCode
			a.RateLimit = ParseRateLimitHeaders(res.Header)
			a.RetryAfter = ParseRetryAfter(res.Header, time.Now())
		}
		log.add(a)
	}
	return res, err
}

// Send sends request seq mod len(requests).
func (s *SDKSender) Send(ctx context.Context, seq int64) Outcome {
	log := &attemptLog{}
	ctx = context.WithValue(ctx, attemptLogKey{}, log)
	params := s.requests[int(seq%int64(len(s.requests)))]
	var out Outcome
	if s.stream {
		out = s.sendStreaming(ctx, params)
	} else {
		out = s.sendOnce(ctx, params)
	}
	out.Attempts = log.snapshot()
	if out.Err != nil {
		out.Class, out.MidStream = classifyError(out.Err, out.Attempts)
	} else {
		out.Class = ClassOK
	}
	return out
}

// sendOnce makes a non-streaming call. The SDK builds, authenticates,
// sends, retries and maps errors as it does for any caller; only the
// successful body is taken raw (option.WithResponseBodyInto) and just its
// usage decoded, because the SDK's reflective decoding of the whole
// Message costs about a fifth of the generator's CPU per request and a
// load test never reads the text.
func (s *SDKSender) sendOnce(ctx context.Context, params anthropic.MessageNewParams) Outcome {
	var raw []byte
	if _, err := s.client.Messages.New(ctx, params, option.WithResponseBodyInto(&raw)); err != nil {
		return Outcome{Err: err}
	}
	var body struct {
		Type  string `json:"type"`
		Usage struct {
			InputTokens              int64 `json:"input_tokens"`
			OutputTokens             int64 `json:"output_tokens"`
			CacheCreationInputTokens int64 `json:"cache_creation_input_tokens"`
			CacheReadInputTokens     int64 `json:"cache_read_input_tokens"`
		} `json:"usage"`
	}
	if err := json.Unmarshal(raw, &body); err != nil {
		return Outcome{Err: fmt.Errorf("decoding message response: %w", err)}
	}
	if body.Type != "message" {
		return Outcome{Err: fmt.Errorf("response is not a message (type %q)", body.Type)}
	}
	u := body.Usage
	return Outcome{Usage: Usage{
		InputTokens:              u.InputTokens,
		OutputTokens:             u.OutputTokens,
		CacheCreationInputTokens: u.CacheCreationInputTokens,
		CacheReadInputTokens:     u.CacheReadInputTokens,
	}}
}

func usageOf(u anthropic.Usage) Usage {
	return Usage{
		InputTokens:              u.InputTokens,
		OutputTokens:             u.OutputTokens,
		CacheCreationInputTokens: u.CacheCreationInputTokens,
		CacheReadInputTokens:     u.CacheReadInputTokens,
	}
}

// errStreamTruncated marks a stream that ended without message_stop: the
// connection dropped, but SSE has no other way to say so.
var errStreamTruncated = errors.New("stream ended before message_stop")

func (s *SDKSender) sendStreaming(ctx context.Context, params anthropic.MessageNewParams) Outcome {
	stream := s.client.Messages.NewStreaming(ctx, params)
	defer func() { _ = stream.Close() }() // The body is fully read or abandoned; a close error changes nothing.
	var out Outcome
	stopped := false
	for stream.Next() {
		ev := stream.Current()
		switch ev.Type {
		case "message_start":
			out.Usage = usageOf(ev.Message.Usage)
		case "content_block_delta":
			now := time.Now()
			if out.FirstToken.IsZero() {
				out.FirstToken = now
			}
			out.LastToken = now
		case "message_delta":
			// Usage in message_delta is cumulative.
			out.Usage.OutputTokens = max(out.Usage.OutputTokens, ev.Usage.OutputTokens)
			out.Usage.InputTokens = max(out.Usage.InputTokens, ev.Usage.InputTokens)
			out.Usage.CacheCreationInputTokens = max(out.Usage.CacheCreationInputTokens, ev.Usage.CacheCreationInputTokens)
			out.Usage.CacheReadInputTokens = max(out.Usage.CacheReadInputTokens, ev.Usage.CacheReadInputTokens)
		case "message_stop":
			stopped = true
		}
	}
	switch err := stream.Err(); {
	case err != nil:
		out.Err = err
	case !stopped:
		out.Err = errStreamTruncated
	}
	return out
}

// classifyError names the class of a failed request from the SDK's error
// and the attempts seen. An API error after HTTP 200 is a mid-stream error
// event, classified by its error.type.
func classifyError(err error, attempts []Attempt) (Class, bool) {
	var apiErr *anthropic.Error
	if errors.As(err, &apiErr) {
		if apiErr.StatusCode >= 200 && apiErr.StatusCode < 300 {
			return ClassifyErrorType(string(apiErr.Type())), true
		}
		if apiErr.StatusCode != 0 {
			return ClassifyStatus(apiErr.StatusCode), false
		}
	}
	if errors.Is(err, errStreamTruncated) {
		return ClassTransport, true
	}
	if n := len(attempts); n > 0 {
		if st := attempts[n-1].Status; st != 0 && (st < 200 || st >= 300) {
			// For example a redirect that was not followed.
			return ClassifyStatus(st), false
		}
	}
	return ClassTransport, false
}
