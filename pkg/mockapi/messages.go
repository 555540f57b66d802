package mockapi

import (
	"fmt"
	"net/http"
	"strconv"

	"github.com/claudecap/claudecap/pkg/dimension"
)

// usage is the usage object of a message.
type usage struct {
	input, cacheCreation5m, cacheCreation1h, cacheRead, output int64
}

// admittedMessage is everything the response writers need.
type admittedMessage struct {
	id       string
	model    string
	out      outputPlan
	usage    usage
	limiter  *classLimiter
	reserved int64
	fault    fault
	rng      rng
}

// handleMessages serves POST /v1/messages: parse and validate, roll faults,
// account for the prompt cache, admit against the class's buckets, then
// answer plainly or as an event stream.
func (s *Server) handleMessages(rc *requestContext) {
	buf := s.getBuffer()
	defer s.putBuffer(buf)
	var req messagesRequest
	model, ok := s.readMessagesRequest(rc, buf, &req, true)
	if !ok {
		return
	}
	if *req.MaxTokens > model.maxOutput {
		s.fail(rc, invalidRequest("max_tokens: %d > %d, which is the maximum allowed number of output tokens for %s", *req.MaxTokens, model.maxOutput, model.id))
		return
	}
	lim, e := s.limiter(rc.apiKey, model)
	if e != nil {
		s.fail(rc, e)
		return
	}

	msg := admittedMessage{model: req.Model, limiter: lim, rng: newRNG(s.cfg.Seed, s.msgSeq.Add(1))}
	msg.fault = rollFault(&s.cfg.Faults, &msg.rng, req.Stream)
	switch msg.fault {
	case faultOverloaded:
		s.stats.fault(faultOverloaded)
		s.fail(rc, &apiError{typ: ErrOverloaded, message: "Overloaded"})
		return
	case faultAPIError:
		s.stats.fault(faultAPIError)
		s.fail(rc, &apiError{typ: ErrAPI, message: "Internal server error"})
		return
	case faultDropped:
		if !req.Stream {
			s.stats.fault(faultDropped)
			panic(http.ErrAbortHandler) // net/http closes the connection without a response
		}
	}

	prompt := profilePrompt(s.hashKey, rc.apiKey, &req)
	if prompt.total > model.contextWindow {
		s.fail(rc, invalidRequest("prompt is too long: %d tokens > %d maximum", prompt.total, model.contextWindow))
		return
	}
	now := s.nowMicros()
	var cu cacheUsage
	if s.cfg.MinCacheableTokens > 0 {
		cu = s.cache.plan(now, &prompt, s.cfg.MinCacheableTokens)
	}
	ch := charge{
		uncached:      prompt.total - cu.read - cu.creation(),
		cacheCreation: cu.creation(),
		cacheRead:     cu.read,
		readsCount:    model.readsCount,
		outputReserve: *req.MaxTokens,
	}
	v := lim.admit(now, ch)
	h := rc.w.Header()
	writeRateLimitHeaders(h, &v.state, &s.times)
	if !v.admitted {
		s.stats.rateLimited()
		h[hdrRetryAfter] = []string{strconv.FormatInt(v.retryAfter, 10)}
		s.fail(rc, &apiError{typ: ErrRateLimit, message: rateLimitMessage(&v, lim, model, ch)})
		return
	}
	if s.cfg.MinCacheableTokens > 0 {
		s.cache.commit(now, &prompt, cu, s.cfg.MinCacheableTokens)
	}

	msg.id = s.newID("msg_")
	msg.reserved = v.reserved
	msg.out = s.planOutput(&msg.rng, &req, *req.MaxTokens)
	msg.usage = usage{input: ch.uncached, cacheCreation5m: cu.creation5m, cacheCreation1h: cu.creation1h, cacheRead: cu.read, output: msg.out.tokens}
	if req.Stream {
		s.stream(rc, &msg)
		return
	}
	s.respond(rc, &msg)
}

// rateLimitMessage explains a 429 in the API's manner, naming the limit.
func rateLimitMessage(v *verdict, l *classLimiter, m *modelInfo, c charge) string {
	switch v.refusedBy {
	case DimensionOf(dimension.Requests):
		return fmt.Sprintf("This request would exceed your organization's rate limit of %d requests per minute (model class %s). Please retry after %d seconds.", l.limits.RequestsPerMinute, m.class, v.retryAfter)
	case DimensionOf(dimension.InputTokens):
		if v.oversized {
			return fmt.Sprintf("This request's %d input tokens exceed your organization's rate limit of %d input tokens per minute (model class %s) on their own; it can never be admitted. Reduce the prompt size or raise the limit.", c.itpm(), l.limits.InputTokensPerMinute, m.class)
		}
		return fmt.Sprintf("This request would exceed your organization's rate limit of %d input tokens per minute (model class %s). Please retry after %d seconds.", l.limits.InputTokensPerMinute, m.class, v.retryAfter)
	case DimensionOf(dimension.OutputTokens):
		return fmt.Sprintf("This request would exceed your organization's rate limit of %d output tokens per minute (model class %s). Please retry after %d seconds.", l.limits.OutputTokensPerMinute, m.class, v.retryAfter)
	default:
		return fmt.Sprintf("Your organization's traffic to model class %s is rising too fast (acceleration limit). Please ramp up gradually and retry after %d seconds.", m.class, v.retryAfter)
	}
}

// respond writes a non-streaming message after the whole generation time.
func (s *Server) respond(rc *requestContext, msg *admittedMessage) {
	lat := &s.cfg.Latency
	if lat.TimeToFirstToken.Kind != DistZero || lat.PerToken.Kind != DistZero {
		d := lat.TimeToFirstToken.sample(&msg.rng)
		for i := int64(1); i < msg.out.tokens; i++ {
			d += lat.PerToken.sample(&msg.rng)
		}
		// A client that gives up does not stop the charge: the generation
		// was already under way when it left.
		_ = s.cfg.Clock.Sleep(rc.r.Context(), seconds(d))
	}
	msg.limiter.settle(s.nowMicros(), msg.reserved, msg.out.tokens)

	buf := s.getBuffer()
	defer s.putBuffer(buf)
	b := append(buf.b[:0], `{"id":"`...)
	b = append(b, msg.id...)
	b = append(b, `","type":"message","role":"assistant","model":`...)
	b = appendJSONString(b, msg.model)
	b = append(b, `,"content":[{"type":"text","text":`...)
	b = appendJSONString(b, msg.out.text)
	b = append(b, `}],"stop_reason":"`...)
	b = append(b, msg.out.stopReason...)
	b = append(b, `","stop_sequence":`...)
	b = appendStopSequence(b, msg.out.stopSequence)
	b = append(b, `,"usage":`...)
	b = appendUsage(b, &msg.usage, msg.usage.output, true)
	b = append(b, '}')
	buf.b = b
	s.writeJSON(rc, b)
}

func appendStopSequence(b []byte, seq string) []byte {
	if seq == "" {
		return append(b, "null"...)
	}
	return appendJSONString(b, seq)
}

// appendUsage renders a usage object; full adds the fields only the message
// (not message_delta) carries.
func appendUsage(b []byte, u *usage, output int64, full bool) []byte {
	b = append(b, `{"input_tokens":`...)
	b = strconv.AppendInt(b, u.input, 10)
	b = appendIntField(b, "cache_creation_input_tokens", u.cacheCreation5m+u.cacheCreation1h)
	b = appendIntField(b, "cache_read_input_tokens", u.cacheRead)
	if full {
		b = append(b, `,"cache_creation":{"ephemeral_5m_input_tokens":`...)
		b = strconv.AppendInt(b, u.cacheCreation5m, 10)
		b = appendIntField(b, "ephemeral_1h_input_tokens", u.cacheCreation1h)
		b = append(b, '}')
	}
	b = appendIntField(b, "output_tokens", output)
	if full {
		b = append(b, `,"service_tier":"standard"`...)
	}
	return append(b, '}')
}

// readMessagesRequest reads, decodes and validates a Messages request body (max_tokens is
// required for messages, absent for count_tokens) and looks up its model. On failure it
// has answered with the Anthropic-shaped error and returns false.
func (s *Server) readMessagesRequest(rc *requestContext, buf *buffer, req *messagesRequest, needMaxTokens bool) (*modelInfo, bool) {
	if e := s.readBody(rc, buf); e != nil {
		s.fail(rc, e)
		return nil, false
	}
	if e := decodeRequest(buf.b, req); e != nil {
		s.fail(rc, e)
		return nil, false
	}
	if e := validateRequest(req, needMaxTokens); e != nil {
		s.fail(rc, e)
		return nil, false
	}
	model, ok := s.models.lookup(req.Model)
	if !ok {
		s.fail(rc, notFoundModel(req.Model))
		return nil, false
	}
	return model, true
}

// handleCountTokens serves POST /v1/messages/count_tokens.
func (s *Server) handleCountTokens(rc *requestContext) {
	buf := s.getBuffer()
	defer s.putBuffer(buf)
	var req messagesRequest
	if _, ok := s.readMessagesRequest(rc, buf, &req, false); !ok {
		return
	}
	if s.countTokens != nil {
		v := s.countTokens.admit(s.nowMicros())
		h := rc.w.Header()
		writeRateLimitHeaders(h, &v.state, &s.times)
		if !v.admitted {
			s.stats.rateLimited()
			h[hdrRetryAfter] = []string{strconv.FormatInt(v.retryAfter, 10)}
			s.fail(rc, &apiError{typ: ErrRateLimit, message: "This request would exceed your organization's rate limit of " +
				strconv.FormatInt(s.cfg.CountTokensRPM, 10) + " token counting requests per minute. Please retry after " +
				strconv.FormatInt(v.retryAfter, 10) + " seconds."})
			return
		}
	}
	b := append(buf.b[:0], `{"input_tokens":`...)
	b = strconv.AppendInt(b, countInputTokens(&req), 10)
	b = append(b, '}')
	buf.b = b
	s.writeJSON(rc, b)
}
