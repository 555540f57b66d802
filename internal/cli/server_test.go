package cli

import (
	"io"
	"net"
	"regexp"
	"strings"
	"testing"
	"time"
)

// shortTimeouts are server timeouts small enough to watch in a test.
var shortTimeouts = serverTimeouts{
	readHeader: 300 * time.Millisecond,
	read:       600 * time.Millisecond,
	idle:       300 * time.Millisecond,
	writeIdle:  500 * time.Millisecond,
}

// waitForAddr polls out for the first http://host:port after prefix.
func waitForAddr(t *testing.T, out interface{ String() string }, prefix string, done <-chan error) string {
	t.Helper()
	re := regexp.MustCompile(regexp.QuoteMeta(prefix) + `http://(127\.0\.0\.1:\d+)`)
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); {
		if m := re.FindStringSubmatch(out.String()); m != nil {
			return m[1]
		}
		select {
		case err := <-done:
			t.Fatalf("the server ended early: %v", err)
		case <-time.After(10 * time.Millisecond):
		}
	}
	t.Fatalf("no address in %q", out.String())
	return ""
}

// closedWithin reports whether the server closes conn within d while the
// client keeps sending with send (called every 50 ms until it returns
// false); it returns how long that took.
func closedWithin(t *testing.T, conn net.Conn, d time.Duration, send func(i int) bool) (time.Duration, bool) {
	t.Helper()
	start := time.Now()
	closed := make(chan struct{})
	go func() {
		defer close(closed)
		_ = conn.SetReadDeadline(time.Now().Add(d))
		_, _ = io.Copy(io.Discard, conn) // until the server closes, or d passes
	}()
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for i := 0; ; i++ {
		select {
		case <-closed:
			took := time.Since(start)
			return took, took < d
		case <-tick.C:
			if send != nil && !send(i) {
				send = nil
			}
		}
	}
}

// assertSlowClientsCut checks, against the server at addr with
// shortTimeouts, that a client sending its headers or its body slowly, and
// an idle keep-alive connection, are cut off.
func assertSlowClientsCut(t *testing.T, addr, path string) {
	t.Helper()
	dial := func() net.Conn {
		conn, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = conn.Close() })
		return conn
	}
	const within = 3 * time.Second
	// Slowloris: one header line every 50 ms, never the blank line.
	conn := dial()
	took, ok := closedWithin(t, conn, within, func(i int) bool {
		line := "X-Slow: " + strings.Repeat("a", i%10) + "\r\n"
		if i == 0 {
			line = "POST " + path + " HTTP/1.1\r\nHost: 127.0.0.1\r\n"
		}
		_, err := io.WriteString(conn, line)
		return err == nil
	})
	if !ok {
		t.Errorf("a client sending its headers slowly was not cut off within %s", within)
	} else {
		t.Logf("slow headers cut after %s", took)
	}
	// A body of 100 bytes announced, one byte every 50 ms.
	conn = dial()
	took, ok = closedWithin(t, conn, within, func(i int) bool {
		chunk := "x"
		if i == 0 {
			chunk = "POST " + path + " HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Api-Key: k\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{"
		}
		_, err := io.WriteString(conn, chunk)
		return err == nil
	})
	if !ok {
		t.Errorf("a client sending its body slowly was not cut off within %s", within)
	} else {
		t.Logf("slow body cut after %s", took)
	}
	// An idle keep-alive connection after one complete exchange.
	conn = dial()
	if _, err := io.WriteString(conn, "GET /v1/models HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Api-Key: k\r\nAnthropic-Version: 2023-06-01\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	if _, ok := closedWithin(t, conn, within, nil); !ok {
		t.Errorf("an idle keep-alive connection was not closed within %s", within)
	}
}
