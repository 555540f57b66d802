package redislog

import (
	"context"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-logr/logr"
	"github.com/go-logr/logr/funcr"
	"github.com/redis/go-redis/v9"
)

func TestLinesGoToTheLoggerAtDebugVerbosity(t *testing.T) {
	var lines []string
	sink := func(verbosity int) adapter {
		return adapter{log: funcr.New(func(_, args string) { lines = append(lines, args) }, funcr.Options{Verbosity: verbosity}).V(1)}
	}
	sink(0).Printf(context.Background(), "dial %s failed", "127.0.0.1:6379")
	if len(lines) != 0 {
		t.Fatalf("at verbosity 0 nothing should be logged, got %q", lines)
	}
	sink(1).Printf(context.Background(), "dial %s failed", "127.0.0.1:6379")
	if len(lines) != 1 || !strings.Contains(lines[0], "dial 127.0.0.1:6379 failed") {
		t.Fatalf("at verbosity 1 the formatted line should be logged once, got %q", lines)
	}
}

// Install routes go-redis's own log lines (here, a client whose server is gone) to the
// logger, at debug verbosity only.
func TestInstallRoutesGoRedisLines(t *testing.T) {
	var mu sync.Mutex
	var lines []string
	Install(funcr.New(func(_, args string) {
		mu.Lock()
		lines = append(lines, args)
		mu.Unlock()
	}, funcr.Options{Verbosity: 1}))
	t.Cleanup(func() { Install(logr.Discard()) })

	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	_ = l.Close() // nothing listens there any more
	rdb := redis.NewClient(&redis.Options{Addr: addr, MaxRetries: -1, PoolSize: 1, DialTimeout: 200 * time.Millisecond})
	defer func() { _ = rdb.Close() }()
	for range 5 {
		_ = rdb.Ping(context.Background()).Err()
	}
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		mu.Lock()
		n := len(lines)
		mu.Unlock()
		if n > 0 {
			mu.Lock()
			defer mu.Unlock()
			if !strings.Contains(strings.Join(lines, "\n"), "redis") {
				t.Fatalf("lines do not come from go-redis: %q", lines)
			}
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatal("go-redis logged nothing through the installed logger")
}
