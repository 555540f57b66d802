package mockapi

import (
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/maphash"
	"io"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/claudecap/claudecap/pkg/capacity"
)

// MaxRequestBytes is the Messages API's request size limit (32 MB); larger
// bodies get 413 request_too_large.
const MaxRequestBytes = 32 << 20

// validVersion reports whether an anthropic-version value is a version
// date (YYYY-MM-DD) no older than the first one, 2023-01-01. The API moves
// its versions forward (SDK v2 sends dates later than the long-standing
// 2023-06-01), so the mock accepts any well-formed date rather than a list.
func validVersion(v string) bool {
	if len(v) != 10 || v[4] != '-' || v[7] != '-' || v < "2023-01-01" {
		return false
	}
	for i := range len(v) {
		if i != 4 && i != 7 && (v[i] < '0' || v[i] > '9') {
			return false
		}
	}
	return true
}

// Server is the mock API. It is an http.Handler; run it with net/http or
// httptest.
type Server struct {
	cfg     Config
	models  *modelIndex
	cache   *promptCache
	stats   *serverStats
	times   timeCache
	text    string // pre-generated output text, see output.go
	keys    map[string]bool
	idBase  uint64
	seq     atomic.Uint64 // ids
	msgSeq  atomic.Uint64 // message requests, for per-request random draws
	hashKey maphash.Seed

	limitersMu sync.RWMutex
	limiters   map[limiterKey]*classLimiter
	classLimit map[capacity.ModelClass]classLimits

	countTokens *countTokensLimiter
	bufs        sync.Pool
}

// limiterKey selects one set of buckets: a model class, and the API key
// when limits are per key.
type limiterKey struct {
	apiKey string
	class  capacity.ModelClass
}

// classLimits are a class's resolved limits, or why it has none.
type classLimits struct {
	limits Limits
	err    error
}

// New builds a mock server from cfg.
func New(cfg Config) (*Server, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, fmt.Errorf("mock API config: %w", err)
	}
	var b [8]byte
	if _, err := rand.Read(b[:]); err != nil {
		return nil, fmt.Errorf("seeding request ids: %w", err)
	}
	s := &Server{
		cfg:        cfg,
		models:     newModelIndex(cfg.Catalog),
		cache:      newPromptCache(),
		stats:      newServerStats(cfg.Clock.Now()),
		text:       generateText(cfg.Seed),
		idBase:     binary.LittleEndian.Uint64(b[:]),
		hashKey:    maphash.MakeSeed(),
		limiters:   map[limiterKey]*classLimiter{},
		classLimit: map[capacity.ModelClass]classLimits{},
	}
	s.bufs.New = func() any { return new(buffer) }
	if len(cfg.APIKeys) > 0 {
		s.keys = make(map[string]bool, len(cfg.APIKeys))
		for _, k := range cfg.APIKeys {
			s.keys[k] = true
		}
	}
	for _, m := range s.models.list {
		if _, done := s.classLimit[m.class]; done {
			continue
		}
		l, err := cfg.limitsFor(m.class)
		s.classLimit[m.class] = classLimits{limits: l, err: err}
	}
	if cfg.CountTokensRPM > 0 {
		s.countTokens = newCountTokensLimiter(cfg.CountTokensRPM, s.nowMicros())
	}
	return s, nil
}

// Config returns the effective configuration, defaults filled in.
func (s *Server) Config() Config { return s.cfg }

func (s *Server) nowMicros() int64 { return s.cfg.Clock.Now().UnixMicro() }

// ServeHTTP routes a request. Every response carries a request-id and
// HeaderMock.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	rc := requestContext{id: s.newID("req_"), w: w, r: r}
	w.Header()[hdrRequestID] = []string{rc.id}
	w.Header()[HeaderMock] = valMock
	path := r.URL.Path
	switch {
	case path == "/v1/messages":
		s.stats.endpoint(epMessages)
		if s.allow(&rc, http.MethodPost) {
			s.handleMessages(&rc)
		}
	case path == "/v1/messages/count_tokens":
		s.stats.endpoint(epCountTokens)
		if s.allow(&rc, http.MethodPost) {
			s.handleCountTokens(&rc)
		}
	case path == "/v1/models" || strings.HasPrefix(path, "/v1/models/"):
		s.stats.endpoint(epModels)
		if s.allow(&rc, http.MethodGet) {
			s.handleModels(&rc, strings.TrimPrefix(strings.TrimPrefix(path, "/v1/models"), "/"))
		}
	case path == "/mock/stats" && r.Method == http.MethodGet:
		s.handleStats(&rc)
	case path == "/mock/stats/reset" && r.Method == http.MethodPost:
		s.ResetStats()
		w.WriteHeader(http.StatusNoContent)
	case path == "/mock/reset" && r.Method == http.MethodPost:
		s.Reset()
		w.WriteHeader(http.StatusNoContent)
	default:
		s.fail(&rc, &apiError{typ: ErrNotFound, message: "Not Found"})
	}
}

// requestContext carries one request through the handlers.
type requestContext struct {
	id     string
	apiKey string
	w      http.ResponseWriter
	r      *http.Request
}

// allow checks the method and the headers every API call needs: an API key
// (x-api-key, or Authorization: Bearer) and a supported anthropic-version.
func (s *Server) allow(rc *requestContext, method string) bool {
	h := rc.r.Header
	if rc.r.Method != method {
		s.fail(rc, &apiError{typ: ErrNotFound, message: fmt.Sprintf("%s %s: method not allowed; use %s", rc.r.Method, rc.r.URL.Path, method)})
		return false
	}
	key := firstHeader(h, "X-Api-Key")
	if key == "" {
		if auth := firstHeader(h, "Authorization"); len(auth) > 7 && strings.EqualFold(auth[:7], "bearer ") {
			key = strings.TrimSpace(auth[7:])
		}
	}
	switch {
	case key == "":
		s.fail(rc, &apiError{typ: ErrAuthentication, message: "x-api-key header is required"})
		return false
	case s.keys != nil && !s.keys[key]:
		s.fail(rc, &apiError{typ: ErrAuthentication, message: "invalid x-api-key"})
		return false
	}
	rc.apiKey = key
	switch v := firstHeader(h, "Anthropic-Version"); {
	case v == "":
		s.fail(rc, invalidRequest("anthropic-version: header is required"))
		return false
	case !validVersion(v):
		s.fail(rc, invalidRequest("anthropic-version: %q is not a valid version", v))
		return false
	}
	return true
}

// firstHeader reads a canonical header key without canonicalizing again.
func firstHeader(h http.Header, key string) string {
	if v := h[key]; len(v) > 0 {
		return v[0]
	}
	return ""
}

// fail writes an Anthropic error body with the status of its type.
func (s *Server) fail(rc *requestContext, e *apiError) {
	status := statusOf(e.typ)
	s.stats.status(status)
	buf := s.getBuffer()
	defer s.putBuffer(buf)
	buf.b = appendErrorBody(buf.b[:0], e.typ, e.message, rc.id)
	h := rc.w.Header()
	h[hdrContentType] = valJSON
	if status >= http.StatusInternalServerError {
		h[hdrShouldRetry] = valTrue
	}
	rc.w.WriteHeader(status)
	_, _ = rc.w.Write(buf.b)
}

// writeJSON writes a 200 response with body b.
func (s *Server) writeJSON(rc *requestContext, b []byte) {
	s.stats.status(http.StatusOK)
	rc.w.Header()[hdrContentType] = valJSON
	rc.w.WriteHeader(http.StatusOK)
	_, _ = rc.w.Write(b)
}

// readBody reads a request body of at most MaxRequestBytes into buf.
func (s *Server) readBody(rc *requestContext, buf *buffer) *apiError {
	if rc.r.ContentLength > MaxRequestBytes {
		return &apiError{typ: ErrTooLarge, message: "Request exceeds the maximum allowed number of bytes."}
	}
	body := http.MaxBytesReader(rc.w, rc.r.Body, MaxRequestBytes)
	var err error
	buf.b, err = readAll(body, buf.b[:0])
	if err != nil {
		var tooLarge *http.MaxBytesError
		if errors.As(err, &tooLarge) {
			return &apiError{typ: ErrTooLarge, message: "Request exceeds the maximum allowed number of bytes."}
		}
		return invalidRequest("reading request body: %v", err)
	}
	return nil
}

// readAll appends r to b, growing it as needed.
func readAll(r io.Reader, b []byte) ([]byte, error) {
	for {
		if len(b) == cap(b) {
			b = append(b, 0)[:len(b)]
		}
		n, err := r.Read(b[len(b):cap(b)])
		b = b[:len(b)+n]
		if err == io.EOF {
			return b, nil
		}
		if err != nil {
			return b, err
		}
	}
}

// buffer is a pooled byte slice for request bodies and response bodies.
type buffer struct{ b []byte }

// maxPooledBuffer keeps one huge request from pinning its memory forever.
const maxPooledBuffer = 1 << 20

func (s *Server) getBuffer() *buffer { return s.bufs.Get().(*buffer) } //nolint:forcetypeassert // the pool only holds *buffer.

func (s *Server) putBuffer(b *buffer) {
	if cap(b.b) > maxPooledBuffer {
		return
	}
	b.b = b.b[:0]
	s.bufs.Put(b)
}

// newID returns prefix followed by 24 base62 characters, unique per server:
// a random per-server base mixed with a counter.
func (s *Server) newID(prefix string) string {
	n := s.seq.Add(1)
	var out [32]byte
	i := copy(out[:], prefix)
	x := s.idBase ^ (n * 0x9e3779b97f4a7c15)
	y := n
	const digits = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
	for j := 0; j < 24; j++ {
		var d uint64
		if j < 12 {
			d, x = x%62, x/62
		} else {
			d, y = y%62, y/62
		}
		out[i] = digits[d]
		i++
	}
	return string(out[:i])
}

// limiter returns the buckets for a class (and key), creating them on first
// use.
func (s *Server) limiter(apiKey string, m *modelInfo) (*classLimiter, *apiError) {
	cl := s.classLimit[m.class]
	if cl.err != nil {
		return nil, &apiError{typ: ErrNotFound, message: fmt.Sprintf("model: %s has no %s limits in the model catalog; configure explicit limits for class %s", m.id, s.cfg.Tier, m.class)}
	}
	key := limiterKey{class: m.class}
	if s.cfg.LimitsPerAPIKey {
		key.apiKey = apiKey
	}
	s.limitersMu.RLock()
	l := s.limiters[key]
	s.limitersMu.RUnlock()
	if l != nil {
		return l, nil
	}
	s.limitersMu.Lock()
	defer s.limitersMu.Unlock()
	if l = s.limiters[key]; l == nil {
		l = newClassLimiter(cl.limits, s.cfg.OTPMMode, s.cfg.Acceleration, s.nowMicros())
		s.limiters[key] = l
	}
	return l, nil
}

// Reset refills every bucket, empties the prompt cache and zeroes the
// statistics, as if the server had just started.
func (s *Server) Reset() {
	now := s.nowMicros()
	s.limitersMu.Lock()
	for _, l := range s.limiters {
		l.reset(now)
	}
	s.limitersMu.Unlock()
	if s.countTokens != nil {
		s.countTokens.reset(now)
	}
	s.cache.reset()
	s.msgSeq.Store(0)
	s.ResetStats()
}

// ResetStats zeroes the statistics and leaves buckets and cache alone.
func (s *Server) ResetStats() {
	s.limitersMu.RLock()
	for _, l := range s.limiters {
		l.resetStats()
	}
	s.limitersMu.RUnlock()
	s.stats.reset(s.cfg.Clock.Now())
}
