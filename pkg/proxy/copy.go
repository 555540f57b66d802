package proxy

import (
	"bufio"
	"errors"
	"io"
	"mime"
	"net/http"
	"time"
)

// copyResult is how passing a response body through went.
type copyResult struct {
	// Usage is what the body said about usage.
	Usage observedUsage
	// UpstreamErr is set when reading the upstream body failed before its end
	// (a cut connection, a timeout): the client got a truncated body.
	UpstreamErr error
	// ClientErr is set when the client stopped taking the body.
	ClientErr error
}

// isEventStream reports whether a response is server-sent events.
func isEventStream(h http.Header) bool {
	mt, _, err := mime.ParseMediaType(h.Get("Content-Type"))
	return err == nil && mt == "text/event-stream"
}

// flusher pushes what was written so far to the client.
type flusher interface{ Flush() }

// noFlush is the flusher of sinks that keep everything until the end.
type noFlush struct{}

func (noFlush) Flush() {}

// copyEventStream passes server-sent events through as they come: every line
// is written as soon as it is read and the client is flushed at the end of
// each event, so the proxy adds no buffering to time-to-first-token. Usage is
// read from message_start and message_delta on the way. Each read restarts
// the idle timer (nil: none).
func copyEventStream(dst io.Writer, f flusher, src io.Reader, idle *time.Timer, idleAfter time.Duration) copyResult {
	var t sseTracker
	br := bufio.NewReaderSize(src, 32<<10)
	for {
		line, err := br.ReadSlice('\n')
		if idle != nil {
			idle.Reset(idleAfter)
		}
		if len(line) > 0 {
			if _, werr := dst.Write(line); werr != nil {
				return copyResult{Usage: t.usage, ClientErr: werr}
			}
			complete := err == nil
			t.feed(line, complete)
			if complete && (len(line) == 1 || (len(line) == 2 && line[0] == '\r')) {
				f.Flush()
			}
		}
		switch {
		case err == nil || errors.Is(err, bufio.ErrBufferFull):
			continue
		case errors.Is(err, io.EOF):
			f.Flush()
			return copyResult{Usage: t.usage}
		default:
			f.Flush()
			return copyResult{Usage: t.usage, UpstreamErr: err}
		}
	}
}

// captureBuffer keeps up to limit bytes and notes whether more came.
type captureBuffer struct {
	buf      []byte
	limit    int64
	overflow bool
}

func (c *captureBuffer) Write(p []byte) (int, error) {
	if c.overflow || int64(len(c.buf)+len(p)) > c.limit {
		c.overflow = true
		return len(p), nil
	}
	c.buf = append(c.buf, p...)
	return len(p), nil
}

// clientWriter remembers the client's first write error and then swallows
// the rest, so a body whose usage is needed is still read to the end.
type clientWriter struct {
	w   io.Writer
	err error
}

func (c *clientWriter) Write(p []byte) (int, error) {
	if c.err == nil {
		_, c.err = c.w.Write(p)
	}
	return len(p), nil
}

// copyMessage passes a non-streaming body through while keeping a copy (up
// to limit bytes) to read usage from; withUsage says whether the body should
// carry usage (a successful Messages response).
func copyMessage(dst io.Writer, src io.Reader, sizeHint, limit int64, withUsage bool) copyResult {
	if !withUsage {
		return copyPlain(dst, src)
	}
	capture := &captureBuffer{limit: limit, buf: make([]byte, 0, min(max(sizeHint, 512), limit))}
	cw := &clientWriter{w: dst}
	_, err := io.Copy(io.MultiWriter(cw, capture), src)
	res := copyResult{ClientErr: cw.err, UpstreamErr: err}
	if err == nil && !capture.overflow {
		res.Usage = usageFromMessage(capture.buf)
	} else {
		res.Usage.Malformed = true
	}
	return res
}

// watchedWriter records whether a failed write was the writer's fault, so
// a copy error can be told from the reader's.
type watchedWriter struct {
	w   io.Writer
	err error
}

func (w *watchedWriter) Write(p []byte) (int, error) {
	n, err := w.w.Write(p)
	if err != nil {
		w.err = err
	}
	return n, err
}

// copyPlain passes a body through without looking at it.
func copyPlain(dst io.Writer, src io.Reader) copyResult {
	ww := &watchedWriter{w: dst}
	_, err := io.Copy(ww, src)
	switch {
	case ww.err != nil:
		return copyResult{ClientErr: ww.err}
	case err != nil:
		return copyResult{UpstreamErr: err}
	}
	return copyResult{}
}
