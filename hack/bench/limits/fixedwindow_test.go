package limits

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/anthropics/anthropic-sdk-go/v2"
	"github.com/redis/go-redis/v9"

	"github.com/claudecap/claudecap/pkg/proxy"
	"github.com/claudecap/claudecap/pkg/ratelimit"
)

// fixedWindow is the rate limiter teams usually write first: one Redis counter per dimension
// and wall-clock minute, INCRBY the call's cost and EXPIRE 60 s, checked before the call.
// Input is the proxy's own estimate of the body, output counts as max_tokens; nothing is
// given back when a call ends or is refused, and a Redis error lets the call through (fail
// open), as such code usually does.
type fixedWindow struct {
	rdb    redis.UniversalClient
	limits ratelimit.Limits
	prefix string
}

// fixedWindowTTL is the counters' EXPIRE.
const fixedWindowTTL = time.Minute

// windowKey names the counter of one dimension in one minute (Unix seconds / 60).
func windowKey(prefix string, d dimension, minute int64) string {
	return fmt.Sprintf("%s:%s:%d", prefix, [dimCount]string{"rpm", "itpm", "otpm"}[d], minute)
}

// allow counts cost into the current minute and reports whether every counter is still
// within its limit.
func (f *fixedWindow) allow(ctx context.Context, cost ratelimit.Amounts, now time.Time) (bool, error) {
	minute := now.Unix() / 60
	amounts := cost
	var cmds [dimCount]*redis.IntCmd
	pipe := f.rdb.Pipeline()
	for d := range dimCount {
		key := windowKey(f.prefix, d, minute)
		cmds[d] = pipe.IncrBy(ctx, key, amounts[d])
		pipe.Expire(ctx, key, fixedWindowTTL)
	}
	if _, err := pipe.Exec(ctx); err != nil {
		return true, err
	}
	var counts [dimCount]int64
	for d, c := range cmds {
		counts[d] = c.Val()
	}
	return withinLimits(counts, f.limits), nil
}

// withinLimits reports whether every counter is at or below its limit (0: unlimited).
func withinLimits(counts [dimCount]int64, l ratelimit.Limits) bool {
	for d, lim := range [dimCount]int64{l.RequestsPerMinute, l.InputTokensPerMinute, l.OutputTokensPerMinute} {
		if lim > 0 && counts[d] > lim {
			return false
		}
	}
	return true
}

// fixedWindowCost is what the counter charges for a call: one request, the proxy's input
// estimate of the wire body, and max_tokens.
func fixedWindowCost(p anthropic.MessageNewParams) (ratelimit.Amounts, error) {
	body, err := json.Marshal(p)
	if err != nil {
		return ratelimit.Amounts{}, fmt.Errorf("encoding a request: %w", err)
	}
	return ratelimit.Call(proxy.EstimateInputTokens(body), p.MaxTokens), nil
}
