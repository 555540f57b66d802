package mockapi

import (
	"net/http"
)

// Fixed pieces of the event stream.
const (
	sseContentBlockStart = "event: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"text\",\"text\":\"\"}}\n\n"
	ssePing              = "event: ping\ndata: {\"type\": \"ping\"}\n\n"
	sseDeltaPrefix       = "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":"
	sseContentBlockStop  = "event: content_block_stop\ndata: {\"type\":\"content_block_stop\",\"index\":0}\n\n"
	sseMessageStop       = "event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n"
)

// stream writes a message as server-sent events in the API's order:
// message_start, content_block_start, ping, content_block_delta (text_delta)
// per TokensPerDelta tokens, content_block_stop, message_delta (stop reason
// and cumulative usage), message_stop. Headers and the first events go out
// after the time to first token; later deltas are paced by the per-token
// time. An injected mid-stream fault cuts the stream at a drawn token: an
// `event: error` (overloaded_error) or a dropped connection. Output is
// charged for the tokens actually sent.
func (s *Server) stream(rc *requestContext, msg *admittedMessage) {
	lat := &s.cfg.Latency
	paced := lat.TimeToFirstToken.Kind != DistZero || lat.PerToken.Kind != DistZero
	ctx := rc.r.Context()
	flusher, _ := rc.w.(http.Flusher)

	failAt := int64(-1)
	if msg.fault == faultStreamError || msg.fault == faultDropped {
		failAt = int64(msg.rng.intn(int(max(msg.out.tokens, 1))))
	}
	var sent int64
	defer func() { msg.limiter.settle(s.nowMicros(), msg.reserved, sent) }()

	if paced {
		if s.cfg.Clock.Sleep(ctx, seconds(lat.TimeToFirstToken.sample(&msg.rng))) != nil {
			return
		}
	}
	h := rc.w.Header()
	h[hdrContentType] = valEventStream
	h[hdrCacheControl] = valNoCache
	s.stats.status(http.StatusOK)
	rc.w.WriteHeader(http.StatusOK)

	buf := s.getBuffer()
	defer s.putBuffer(buf)
	b := s.appendMessageStart(buf.b[:0], msg)
	b = append(b, sseContentBlockStart...)
	b = append(b, ssePing...)

	step := int64(lat.TokensPerDelta)
	text := msg.out.text
	for sent < msg.out.tokens {
		n := min(step, msg.out.tokens-sent)
		if failAt >= 0 && sent+n > failAt {
			buf.b = b
			s.abortStream(rc, msg, buf, flusher)
			return
		}
		if paced && sent > 0 {
			if !s.flush(rc, buf, b, flusher) {
				return
			}
			b = buf.b[:0]
			var d float64
			for range n {
				d += lat.PerToken.sample(&msg.rng)
			}
			if s.cfg.Clock.Sleep(ctx, seconds(d)) != nil {
				return
			}
		}
		lo, hi := sent*bytesPerToken, min((sent+n)*bytesPerToken, int64(len(text)))
		b = append(b, sseDeltaPrefix...)
		// Filler text never needs escaping, so this is a plain copy.
		b = appendJSONString(b, text[lo:hi])
		b = append(b, "}}\n\n"...)
		sent += n
	}
	b = append(b, sseContentBlockStop...)
	b = append(b, "event: message_delta\ndata: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\""...)
	b = append(b, msg.out.stopReason...)
	b = append(b, "\",\"stop_sequence\":"...)
	b = appendStopSequence(b, msg.out.stopSequence)
	b = append(b, "},\"usage\":"...)
	b = appendUsage(b, &msg.usage, sent, false)
	b = append(b, "}\n\n"...)
	b = append(b, sseMessageStop...)
	s.flush(rc, buf, b, flusher)
}

// appendMessageStart renders message_start: the message shell with the
// input usage and the first output token.
func (s *Server) appendMessageStart(b []byte, msg *admittedMessage) []byte {
	b = append(b, "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"id\":\""...)
	b = append(b, msg.id...)
	b = append(b, `","type":"message","role":"assistant","model":`...)
	b = appendJSONString(b, msg.model)
	b = append(b, `,"content":[],"stop_reason":null,"stop_sequence":null,"usage":`...)
	b = appendUsage(b, &msg.usage, min(1, msg.out.tokens), true)
	return append(b, "}}\n\n"...)
}

// flush writes b and flushes it to the client; false when the client is gone.
func (s *Server) flush(rc *requestContext, buf *buffer, b []byte, f http.Flusher) bool {
	buf.b = b
	if _, err := rc.w.Write(b); err != nil {
		return false
	}
	if f != nil {
		f.Flush()
	}
	return rc.r.Context().Err() == nil
}

// abortStream ends a stream with its injected fault.
func (s *Server) abortStream(rc *requestContext, msg *admittedMessage, buf *buffer, f http.Flusher) {
	s.stats.fault(msg.fault)
	b := buf.b
	if msg.fault == faultStreamError {
		b = append(b, "event: error\ndata: "...)
		b = appendErrorBody(b, ErrOverloaded, "Overloaded", rc.id)
		b = append(b, "\n\n"...)
		s.flush(rc, buf, b, f)
		return
	}
	s.flush(rc, buf, b, f)
	panic(http.ErrAbortHandler) // net/http drops the connection mid-stream
}
