package controllerbench

import (
	"context"
	"fmt"
	"strconv"
	"strings"

	"github.com/redis/go-redis/v9"
)

// redisCounters are the server-side counters the fleet benchmark takes differences of.
type redisCounters struct {
	// Commands is total_commands_processed.
	Commands int64
	// Reads is total_reads_processed: read events the server handled on client sockets.
	// go-redis writes a whole pipeline with one write, and the server reads it with one
	// read (a few hundred bytes fit one segment), so reads count round trips.
	Reads int64
	// Writes is total_writes_processed: replies written to client sockets.
	Writes int64
	// Calls is the calls per command from INFO commandstats ("llen", "multi", ...).
	Calls map[string]int64
}

// readRedisCounters reads INFO stats and commandstats in one command, so the benchmark's
// own reading costs one read, one command and one reply.
func readRedisCounters(ctx context.Context, c *redis.Client) (redisCounters, error) {
	info, err := c.Info(ctx, "stats", "commandstats").Result()
	if err != nil {
		return redisCounters{}, fmt.Errorf("INFO stats commandstats: %w", err)
	}
	return parseRedisInfo(info)
}

// parseRedisInfo reads the counters out of an INFO reply ("key:value" lines, with
// commandstats lines like "cmdstat_llen:calls=12,usec=30,...").
func parseRedisInfo(info string) (redisCounters, error) {
	out := redisCounters{Calls: map[string]int64{}}
	scalars := map[string]*int64{
		"total_commands_processed": &out.Commands,
		"total_reads_processed":    &out.Reads,
		"total_writes_processed":   &out.Writes,
	}
	seen := 0
	for line := range strings.Lines(info) {
		key, value, ok := strings.Cut(strings.TrimSpace(line), ":")
		if !ok {
			continue
		}
		if dst, wanted := scalars[key]; wanted {
			n, err := strconv.ParseInt(value, 10, 64)
			if err != nil {
				return redisCounters{}, fmt.Errorf("INFO field %s=%q: %w", key, value, err)
			}
			*dst = n
			seen++
			continue
		}
		if cmd, isStat := strings.CutPrefix(key, "cmdstat_"); isStat {
			calls, err := commandCalls(value)
			if err != nil {
				return redisCounters{}, fmt.Errorf("INFO field %s: %w", key, err)
			}
			out.Calls[cmd] = calls
		}
	}
	if seen != len(scalars) {
		return redisCounters{}, fmt.Errorf("INFO reply lacks total_commands_processed, total_reads_processed or total_writes_processed (%d of %d found)",
			seen, len(scalars))
	}
	return out, nil
}

// commandCalls reads calls=N out of "calls=N,usec=...".
func commandCalls(stat string) (int64, error) {
	for field := range strings.SplitSeq(stat, ",") {
		if v, ok := strings.CutPrefix(field, "calls="); ok {
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil {
				return 0, fmt.Errorf("calls=%q: %w", v, err)
			}
			return n, nil
		}
	}
	return 0, fmt.Errorf("no calls= in %q", stat)
}

// since is the difference of two readings.
func (c redisCounters) since(before redisCounters) redisCounters {
	d := redisCounters{
		Commands: c.Commands - before.Commands,
		Reads:    c.Reads - before.Reads,
		Writes:   c.Writes - before.Writes,
		Calls:    map[string]int64{},
	}
	for cmd, n := range c.Calls {
		if delta := n - before.Calls[cmd]; delta != 0 {
			d.Calls[cmd] = delta
		}
	}
	return d
}
