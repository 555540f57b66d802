package cli

import (
	"errors"
	"net/http"
	"time"

	"github.com/spf13/pflag"
)

// serverTimeouts bound what one client can hold of a server (`claudecap
// proxy`, `claudecap mock`): slow headers, a slow body, an idle connection
// and a client that stops reading. There is no overall write timeout: a
// long stream is legitimate, so writes are bounded by progress instead.
type serverTimeouts struct {
	readHeader time.Duration
	read       time.Duration
	idle       time.Duration
	writeIdle  time.Duration
}

// addFlags registers the timeouts' flags with their defaults.
func (t *serverTimeouts) addFlags(f *pflag.FlagSet) {
	f.DurationVar(&t.readHeader, "read-header-timeout", 10*time.Second, "longest time to receive a request's headers (slow clients are cut)")
	f.DurationVar(&t.read, "read-timeout", time.Minute,
		"longest time to receive a whole request, body included; once the body is read the deadline is lifted, so long streamed responses are not cut")
	f.DurationVar(&t.idle, "idle-timeout", 2*time.Minute, "close keep-alive connections idle this long")
	f.DurationVar(&t.writeIdle, "write-idle-timeout", 2*time.Minute,
		"cut a response whose client takes no bytes for this long (there is no overall write timeout: streams may last long)")
}

func (t serverTimeouts) validate() error {
	if t.readHeader <= 0 || t.read <= 0 || t.idle <= 0 || t.writeIdle <= 0 {
		return errors.New("--read-header-timeout, --read-timeout, --idle-timeout and --write-idle-timeout must be positive")
	}
	return nil
}

// server returns an http.Server running h within the timeouts.
//
// net/http's ReadTimeout covers the headers and the body; the server lifts
// the read deadline once the body has been read (it then reads in the
// background only to notice the client leaving), so it never cuts a long
// response. WriteTimeout would: it bounds the whole response. Instead each
// write must finish within writeIdle (see idleWriteDeadline), which bounds a
// client that stops reading without bounding a stream that keeps flowing.
func (t serverTimeouts) server(h http.Handler) *http.Server {
	return &http.Server{
		Handler:           idleWriteDeadline(h, t.writeIdle),
		ReadHeaderTimeout: t.readHeader,
		ReadTimeout:       t.read,
		IdleTimeout:       t.idle,
	}
}

// idleWriteDeadline gives every write of h's responses writeIdle to finish:
// a client that stops reading fills the socket buffers, the next write
// blocks, and the deadline fails it, which ends the handler (the proxy then
// settles the call and releases the upstream connection).
func idleWriteDeadline(h http.Handler, writeIdle time.Duration) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		dw := &deadlineWriter{ResponseWriter: w, rc: http.NewResponseController(w), idle: writeIdle}
		// Replaces the deadline an earlier request on the connection left,
		// which the server's own writes (100 Continue) would otherwise meet.
		dw.extend(time.Now())
		h.ServeHTTP(dw, r)
		// The server's last flush after the handler returns is bounded too.
		dw.extend(time.Now())
	})
}

// deadlineWriter pushes the connection's write deadline forward before each
// write and flush. It renews at most every idle/8, so a write always has at
// least 7/8 of idle to finish, without a deadline change per SSE line.
type deadlineWriter struct {
	http.ResponseWriter
	rc      *http.ResponseController
	idle    time.Duration
	renewed time.Time
}

func (d *deadlineWriter) extend(now time.Time) {
	// Writers that support no deadline (tests' recorders) are left alone.
	_ = d.rc.SetWriteDeadline(now.Add(d.idle))
	d.renewed = now
}

func (d *deadlineWriter) renew() {
	if now := time.Now(); now.Sub(d.renewed) >= d.idle/8 {
		d.extend(now)
	}
}

func (d *deadlineWriter) WriteHeader(code int) {
	d.renew()
	d.ResponseWriter.WriteHeader(code)
}

func (d *deadlineWriter) Write(p []byte) (int, error) {
	d.renew()
	return d.ResponseWriter.Write(p)
}

// Flush implements http.Flusher; streaming handlers flush every event.
func (d *deadlineWriter) Flush() {
	d.renew()
	_ = d.rc.Flush()
}

// Unwrap lets http.ResponseController reach the connection.
func (d *deadlineWriter) Unwrap() http.ResponseWriter { return d.ResponseWriter }
