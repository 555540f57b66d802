// Package redistest starts a real, throwaway redis-server for tests.
//
// Tests that exercise Redis-backed code (the shared limiter, signal readers, the
// proxy) run against the real server rather than a fake so that Lua semantics,
// TIME, NOSCRIPT and connection loss behave exactly as in production. Each call to
// Start launches a private server on a free 127.0.0.1 port with persistence
// disabled, waits until it answers PING, and stops it when the test ends.
package redistest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// DefaultBinary is where Debian's redis-server package installs the server.
const DefaultBinary = "/usr/bin/redis-server"

// BinaryEnv overrides the redis-server binary used by Start.
const BinaryEnv = "REDIS_SERVER_BIN"

// startTimeout bounds how long Start waits for PING to answer.
const startTimeout = 15 * time.Second

// portAttempts is how many free ports Start tries before giving up; another
// process may grab a port between our probe and redis-server's bind.
const portAttempts = 5

// Server is one running (or stopped) redis-server owned by a test.
//
// The port is chosen once: Stop kills the process but keeps the address, so
// Restart brings a server back where existing clients will reconnect to it.
type Server struct {
	tb     testing.TB
	binary string
	dir    string
	port   int

	mu      sync.Mutex
	cmd     *exec.Cmd
	exited  chan struct{}
	log     *syncBuffer
	paused  bool
	resume  *time.Timer
	clients []*redis.Client
	client  *redis.Client
}

// Start launches a redis-server on a free loopback port and registers its
// shutdown with tb.Cleanup. It fails the test if redis-server is not installed.
func Start(tb testing.TB) *Server {
	tb.Helper()
	binary, err := findBinary()
	if err != nil {
		tb.Fatalf("redistest: %v", err)
	}
	s := &Server{tb: tb, binary: binary, dir: tb.TempDir()}
	tb.Cleanup(s.cleanup)

	var lastErr error
	for range portAttempts {
		port, err := freePort()
		if err != nil {
			tb.Fatalf("redistest: finding a free loopback port: %v", err)
		}
		s.port = port
		if lastErr = s.launch(); lastErr == nil {
			return s
		}
	}
	tb.Fatalf("redistest: starting redis-server: %v", lastErr)
	return nil
}

// Addr is the server's host:port on 127.0.0.1.
func (s *Server) Addr() string {
	return net.JoinHostPort("127.0.0.1", strconv.Itoa(s.port))
}

// Client returns a go-redis client for the server, shared by all callers of
// this method and closed when the test ends. It survives Restart: go-redis
// redials on the next command.
func (s *Server) Client() *redis.Client {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.client == nil {
		s.client = s.newClientLocked(nil)
	}
	return s.client
}

// NewClient returns a new, independent client (its own connection pool),
// closed when the test ends. Use it to stand in for a separate pod. The
// optional configure function may adjust options (timeouts, pool size) before
// the client is built; Addr is already set.
func (s *Server) NewClient(configure func(*redis.Options)) *redis.Client {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.newClientLocked(configure)
}

func (s *Server) newClientLocked(configure func(*redis.Options)) *redis.Client {
	opts := &redis.Options{Addr: s.Addr()}
	if configure != nil {
		configure(opts)
	}
	c := redis.NewClient(opts)
	s.clients = append(s.clients, c)
	return c
}

// Stop kills the server (SIGKILL, no shutdown save) and waits for it to exit.
// The port stays assigned to this Server so Restart can reuse it; until then
// connections are refused. Stop is idempotent.
func (s *Server) Stop() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.stopLocked()
}

// Restart stops the server if it is running and starts a new one on the same
// port. The new server starts EMPTY: persistence is disabled, so all keys and
// loaded scripts are gone, exactly like a Redis that lost its data. It fails the
// test if the port was taken in the meantime or the server does not come up.
func (s *Server) Restart() {
	s.tb.Helper()
	s.mu.Lock()
	s.stopLocked()
	s.mu.Unlock()
	if err := s.launch(); err != nil {
		s.tb.Fatalf("redistest: restarting redis-server on %s: %v", s.Addr(), err)
	}
}

// Pause freezes the server with SIGSTOP for d (or until Resume when d <= 0),
// so tests can observe a Redis that accepts connections but never answers.
func (s *Server) Pause(d time.Duration) {
	s.tb.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd == nil {
		s.tb.Fatalf("redistest: Pause on a stopped server")
	}
	if err := s.cmd.Process.Signal(syscall.SIGSTOP); err != nil {
		s.tb.Fatalf("redistest: pausing redis-server: %v", err)
	}
	s.paused = true
	if d > 0 {
		s.resume = time.AfterFunc(d, s.Resume)
	}
}

// Resume undoes Pause. It is a no-op when the server is not paused.
func (s *Server) Resume() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.resumeLocked()
}

func (s *Server) resumeLocked() {
	if s.resume != nil {
		s.resume.Stop()
		s.resume = nil
	}
	if !s.paused || s.cmd == nil {
		return
	}
	s.paused = false
	if err := s.cmd.Process.Signal(syscall.SIGCONT); err != nil {
		s.tb.Logf("redistest: resuming redis-server: %v", err)
	}
}

// Log returns what the server has printed so far (useful in failure messages).
func (s *Server) Log() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.log == nil {
		return ""
	}
	return s.log.String()
}

func (s *Server) launch() error {
	log := &syncBuffer{}
	// #nosec G204 -- the binary is a fixed path or an explicit test override, the
	// arguments are ours.
	cmd := exec.Command(s.binary,
		"--port", strconv.Itoa(s.port),
		"--bind", "127.0.0.1",
		"--save", "",
		"--appendonly", "no",
		"--dir", s.dir,
		"--daemonize", "no",
		"--logfile", "",
		"--loglevel", "warning",
		// DEBUG SLEEP / DEBUG commands let tests simulate a slow server.
		"--enable-debug-command", "yes",
	)
	cmd.Stdout = log
	cmd.Stderr = log
	cmd.SysProcAttr = sysProcAttr()
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("running %s: %w", s.binary, err)
	}
	exited := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		close(exited)
	}()

	s.mu.Lock()
	s.cmd, s.exited, s.log = cmd, exited, log
	s.mu.Unlock()

	if err := waitForPing(s.Addr(), cmd.Process.Pid, exited); err != nil {
		s.Stop()
		return fmt.Errorf("%w; server output:\n%s", err, log.String())
	}
	return nil
}

func (s *Server) stopLocked() {
	if s.cmd == nil {
		return
	}
	if s.resume != nil {
		s.resume.Stop()
		s.resume = nil
	}
	s.paused = false
	_ = s.cmd.Process.Kill()
	<-s.exited
	s.cmd = nil
}

func (s *Server) cleanup() {
	s.mu.Lock()
	clients := s.clients
	s.clients = nil
	s.client = nil
	s.resumeLocked()
	s.stopLocked()
	s.mu.Unlock()
	for _, c := range clients {
		_ = c.Close()
	}
}

// waitForPing waits until the server at addr answers PING and is the process pid. A
// server of another test binary that holds the port answers PING too, while ours exits
// on a failed bind: without the pid check the test would share that server's keys.
func waitForPing(addr string, pid int, exited <-chan struct{}) error {
	c := redis.NewClient(&redis.Options{
		Addr:        addr,
		DialTimeout: 200 * time.Millisecond,
		ReadTimeout: 200 * time.Millisecond,
		MaxRetries:  -1,
	})
	defer func() { _ = c.Close() }()
	deadline := time.Now().Add(startTimeout)
	var lastErr error
	for time.Now().Before(deadline) {
		select {
		case <-exited:
			return errors.New("redis-server exited before answering PING")
		default:
		}
		ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
		var info string
		info, lastErr = c.Info(ctx, "server").Result()
		cancel()
		if lastErr == nil {
			if !strings.Contains(info, "process_id:"+strconv.Itoa(pid)+"\r\n") {
				return fmt.Errorf("%s is held by another redis-server", addr)
			}
			return nil
		}
		time.Sleep(20 * time.Millisecond)
	}
	return fmt.Errorf("no PING answer from %s within %s: %w", addr, startTimeout, lastErr)
}

func findBinary() (string, error) {
	if p := os.Getenv(BinaryEnv); p != "" {
		return p, nil
	}
	if _, err := os.Stat(DefaultBinary); err == nil {
		return DefaultBinary, nil
	}
	if p, err := exec.LookPath("redis-server"); err == nil {
		return p, nil
	}
	return "", fmt.Errorf("redis-server not found at %s or on PATH; install it with `apt-get install redis-server` or `make redis`", DefaultBinary)
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer func() { _ = l.Close() }()
	addr, ok := l.Addr().(*net.TCPAddr)
	if !ok {
		return 0, fmt.Errorf("unexpected listener address %v", l.Addr())
	}
	return addr.Port, nil
}

// syncBuffer collects server output written from the exec goroutines.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
