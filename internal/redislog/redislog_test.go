package redislog

import (
	"context"
	"strings"
	"testing"

	"github.com/go-logr/logr/funcr"
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
