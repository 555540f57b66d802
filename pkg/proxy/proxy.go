package proxy

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"time"

	"golang.org/x/sync/singleflight"

	"github.com/claudecap/claudecap/pkg/ratelimit"
)

// messagesPath is the one endpoint the limiter meters. count_tokens has its
// own limits and batches do not use the Messages limits; both, and every
// other /v1/ path, pass through unmetered.
const messagesPath = "/v1/messages"

// backgroundConcurrency bounds settlements running at once.
const backgroundConcurrency = 256

// Proxy is the sidecar's HTTP handler. Create it with New; it is safe for
// concurrent use.
type Proxy struct {
	cfg       Config
	upstream  *url.URL
	transport *http.Transport
	client    *http.Client
	limiter   Limiter
	metrics   *metrics
	metricsH  http.Handler
	log       *slog.Logger
	flights   singleflight.Group
	static    staticLimits // the organization's limits, learned from responses
	work      *background
	publish   publishThrottle
}

// New returns a proxy forwarding to cfg.Upstream and admitting calls through
// limiter.
func New(cfg Config, limiter Limiter) (*Proxy, error) {
	if limiter == nil {
		return nil, errors.New("proxy: nil limiter")
	}
	cfg, upstream, err := cfg.withDefaults()
	if err != nil {
		return nil, fmt.Errorf("proxy config: %w", err)
	}
	if cfg.Class != "" {
		if err := (ratelimit.PoolKey{Organization: "x", Class: cfg.Class}).Validate(); err != nil {
			return nil, fmt.Errorf("proxy config: %w", err)
		}
	}
	tr := newTransport(cfg)
	m := newMetrics()
	return &Proxy{
		cfg:       cfg,
		upstream:  upstream,
		transport: tr,
		client: &http.Client{
			Transport: tr,
			// Redirects are the client's business, like every other response.
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		},
		limiter:  limiter,
		metrics:  m,
		metricsH: m.handler(),
		log:      cfg.Logger,
		work:     newBackground(backgroundConcurrency),
		publish:  publishThrottle{interval: cfg.PublishInterval},
	}, nil
}

// Drain waits until every admitted call has been settled and its upstream
// state published, or ctx ends.
func (p *Proxy) Drain(ctx context.Context) error { return p.work.wait(ctx) }

// Close drains pending settlements and closes idle upstream connections.
// Stop serving requests first.
func (p *Proxy) Close(ctx context.Context) error {
	err := p.Drain(ctx)
	p.transport.CloseIdleConnections()
	return err
}

// call is one metered Messages API call on its way through the proxy.
type call struct {
	class           string
	cacheReadsCount bool
	cost            ratelimit.Amounts
	res             Reservation
	start           time.Time
	waited          time.Duration
}

// ServeHTTP proxies one API request. Only requests the guard admits are
// served (an allowed Host and Origin, a plain path under /v1/ and, with an
// injected key, an allowed route); the upstream is always the configured
// one. POST /v1/messages, spelled exactly so, is the one metered route.
func (p *Proxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if a, ok := p.admits(r); !ok {
		a.write(w)
		return
	}
	if r.ContentLength > p.cfg.MaxBodyBytes {
		tooLarge().write(w)
		return
	}
	if _, ok := p.credentials(r.Header); !ok {
		answer{Status: http.StatusUnauthorized, Type: errAuthentication, Message: "x-api-key header is required"}.write(w)
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, p.cfg.MaxBodyBytes)
	if r.Method == http.MethodPost && r.URL.Path == messagesPath {
		p.serveMessages(w, r)
		return
	}
	p.passThrough(w, r)
}

func tooLarge() answer {
	return answer{Status: http.StatusRequestEntityTooLarge, Type: errRequestTooLarge, Message: "Request exceeds the maximum allowed number of bytes."}
}

// serveMessages meters one POST /v1/messages: estimate, admit, forward,
// settle.
func (p *Proxy) serveMessages(w http.ResponseWriter, r *http.Request) {
	c := &call{start: time.Now()}
	body, err := readBody(r)
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			tooLarge().write(w)
		} else if r.Context().Err() == nil {
			answer{Status: http.StatusBadRequest, Type: errInvalidRequest, Message: "could not read the request body"}.write(w)
		}
		return
	}
	req, inputTokens, err := scanMessagesRequest(body)
	if err == nil {
		c.class, c.cacheReadsCount, err = p.classOf(req.Model)
	}
	if err != nil {
		answer{Status: http.StatusBadRequest, Type: errInvalidRequest, Message: err.Error()}.write(w)
		return
	}
	c.cost = ratelimit.Call(inputTokens, req.MaxTokens)
	if p.cfg.Coalesce && !req.Stream {
		p.serveCoalesced(w, r, body, c)
		return
	}
	if a, ok := p.admit(r.Context(), c); !ok {
		if a.Status != 0 {
			a.write(w)
		}
		return
	}
	p.forward(w, r, body, c)
}

// readBody reads the whole request body (already limited by MaxBytesReader).
func readBody(r *http.Request) ([]byte, error) {
	size := r.ContentLength
	if size < 0 {
		size = 4 << 10
	}
	buf := bytes.NewBuffer(make([]byte, 0, size+1))
	_, err := buf.ReadFrom(r.Body)
	return buf.Bytes(), err
}

// classOf picks the pool of a model: the pinned class, or the catalog's.
func (p *Proxy) classOf(model string) (class string, cacheReadsCount bool, err error) {
	m, lookupErr := p.cfg.Catalog.Model(model)
	if p.cfg.Class != "" {
		return p.cfg.Class, lookupErr == nil && m.CacheReadsCountTowardITPM, nil
	}
	if lookupErr != nil {
		return "", false, &requestError{fmt.Sprintf(
			"model: claudecap proxy knows no rate-limit pool for model %q (catalog as of %s); pin one with --class or add the model to the catalog",
			model, p.cfg.Catalog.AsOf)}
	}
	return string(m.Class), m.CacheReadsCountTowardITPM, nil
}

// admit reserves c.cost, waiting up to MaxWait when waiting is on (see
// reserve). When it fails, the answer for the client comes back (Status 0:
// the client left).
func (p *Proxy) admit(ctx context.Context, c *call) (answer, bool) {
	start := time.Now()
	var err error
	c.res, err = p.reserve(ctx, c)
	c.waited = time.Since(start)
	p.metrics.waited.WithLabelValues(c.class).Observe(c.waited.Seconds())
	if err == nil {
		p.metrics.admitted.WithLabelValues(c.class).Inc()
		p.work.hold() // Released by finish, which every admitted call reaches.
		return answer{}, true
	}
	a, write := admissionAnswer(err, ctx.Err())
	p.countRefusal(c.class, err)
	level := slog.LevelDebug
	if a.Status >= 500 {
		level = slog.LevelWarn
	}
	p.log.Log(ctx, level, "call not admitted", "class", c.class, "status", a.Status, "waited", c.waited, "error", err)
	if !write {
		return answer{}, false
	}
	return a, false
}

// countRefusal counts a refused call. Only a cost above the organization's
// limit is too_large; one above the pool's budget alone is no_room, like a
// full pool: both pass with time.
func (p *Proxy) countRefusal(class string, err error) {
	var rl *ratelimit.RateLimitedError
	var over *overLimitError
	switch {
	case errors.As(err, &over):
		p.metrics.refused.WithLabelValues(class, dimensionLabel(over.Dimension), "too_large").Inc()
	case errors.As(err, &rl):
		p.metrics.refused.WithLabelValues(class, dimensionLabel(rl.Binding), "no_room").Inc()
	case errors.Is(err, ratelimit.ErrUnavailable):
		p.metrics.limiterErrs.WithLabelValues(class, "unavailable").Inc()
	case errors.Is(err, ratelimit.ErrPoolNotConfigured):
		p.metrics.limiterErrs.WithLabelValues(class, "not_configured").Inc()
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		p.metrics.refused.WithLabelValues(class, "", "wait_ended").Inc()
	default:
		p.metrics.limiterErrs.WithLabelValues(class, "other").Inc()
	}
}

// forward sends an admitted call upstream and passes the response through
// as it comes.
func (p *Proxy) forward(w http.ResponseWriter, r *http.Request, body []byte, c *call) {
	ctx, cancel := context.WithTimeout(r.Context(), p.cfg.RequestTimeout)
	defer cancel()
	out, err := p.upstreamRequest(ctx, r, bytes.NewReader(body), int64(len(body)))
	if err != nil {
		p.finish(c, outcome{Sent: false}, nil)
		answer{Status: http.StatusInternalServerError, Type: errAPI, Message: msgBuildFailed}.write(w)
		return
	}
	resp, err := p.client.Do(out)
	if err == nil {
		err = checkStatus(resp)
	}
	if err != nil {
		p.upstreamFailed(w, r, c, err)
		return
	}
	defer func() { _ = resp.Body.Close() }()
	p.metrics.upstreamStatus(resp.StatusCode)
	copyHeaders(w.Header(), resp.Header)
	w.WriteHeader(resp.StatusCode)
	var res copyResult
	if isEventStream(resp.Header) {
		idle := time.AfterFunc(p.cfg.StreamIdleTimeout, cancel)
		res = copyEventStream(w, flusherOf(w), resp.Body, idle, p.cfg.StreamIdleTimeout)
		idle.Stop()
	} else {
		ok := resp.StatusCode >= 200 && resp.StatusCode <= 299
		res = copyMessage(w, resp.Body, resp.ContentLength, p.cfg.MaxResponseCapture, ok)
		flusherOf(w).Flush()
	}
	p.finish(c, outcome{Sent: true, Status: resp.StatusCode, Usage: res.Usage, CacheReadsCount: c.cacheReadsCount}, resp.Header)
	if res.UpstreamErr != nil && res.ClientErr == nil {
		p.log.Warn("upstream response cut short", "class", c.class, "status", resp.StatusCode, "request_id", resp.Header.Get("Request-Id"), "error", res.UpstreamErr)
		// Abort so the client sees a cut body, not a clean end of response.
		panic(http.ErrAbortHandler)
	}
}

// upstreamFailed handles a call that got no valid response (none at all,
// or one with a malformed status): settle by whether it could have reached
// the API, so a malformed answer keeps everything charged; answer 502 (504
// on a timeout).
func (p *Proxy) upstreamFailed(w http.ResponseWriter, r *http.Request, c *call, err error) {
	p.metrics.upstreamStatus(0)
	p.finish(c, outcome{Sent: !neverSent(err)}, nil)
	if r.Context().Err() != nil {
		return // The client left; nobody to answer.
	}
	p.log.Warn("upstream request failed", "class", c.class, "error", err)
	failedUpstreamAnswer(err).write(w)
}

// flusherOf returns w's flusher, or one that does nothing.
func flusherOf(w http.ResponseWriter) flusher {
	if f, ok := w.(http.Flusher); ok {
		return f
	}
	return noFlush{}
}

// passThrough forwards an unmetered request (models, count_tokens, batches).
func (p *Proxy) passThrough(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), p.cfg.RequestTimeout)
	defer cancel()
	out, err := p.upstreamRequest(ctx, r, r.Body, r.ContentLength)
	if err != nil {
		answer{Status: http.StatusInternalServerError, Type: errAPI, Message: msgBuildFailed}.write(w)
		return
	}
	resp, err := p.client.Do(out)
	if err == nil {
		err = checkStatus(resp)
	}
	if err != nil {
		p.metrics.upstreamStatus(0)
		var tooBig *http.MaxBytesError
		switch {
		case errors.As(err, &tooBig):
			tooLarge().write(w)
		case r.Context().Err() == nil:
			p.log.Warn("upstream request failed", "path", r.URL.Path, "error", err)
			failedUpstreamAnswer(err).write(w)
		}
		return
	}
	defer func() { _ = resp.Body.Close() }()
	p.metrics.upstreamStatus(resp.StatusCode)
	copyHeaders(w.Header(), resp.Header)
	w.WriteHeader(resp.StatusCode)
	var res copyResult
	if isEventStream(resp.Header) {
		res = copyEventStream(w, flusherOf(w), resp.Body, nil, 0)
	} else {
		res = copyPlain(w, resp.Body)
	}
	if res.UpstreamErr != nil && res.ClientErr == nil {
		panic(http.ErrAbortHandler)
	}
}
