// Package redislog routes go-redis's internal log lines (a failed dial per attempt,
// for example) into the operator's structured logger at debug verbosity: the
// controller already reports an unreachable Redis in status conditions and events,
// and an outage must not flood the log with one line per poll per workload.
package redislog

import (
	"context"
	"fmt"

	"github.com/go-logr/logr"
	"github.com/redis/go-redis/v9"
)

// Install makes go-redis log through log at V(1). go-redis's logger is process-wide.
func Install(log logr.Logger) {
	redis.SetLogger(adapter{log: log.V(1)})
}

type adapter struct{ log logr.Logger }

func (a adapter) Printf(_ context.Context, format string, v ...any) {
	a.log.Info(fmt.Sprintf(format, v...))
}
