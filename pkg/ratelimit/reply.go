package ratelimit

import (
	"fmt"
	"time"

	"github.com/claudecap/claudecap/pkg/dimension"
)

// Status codes the scripts return in the first reply element.
const (
	statusAdmitted      = 1
	statusRefused       = 0
	statusTooLarge      = -1
	statusNotConfigured = -2

	statusApplied = 1
	statusExpired = -1
	statusSettled = -3
)

// scriptReply is a script's integer array reply, decoded.
type scriptReply struct {
	status int64
	at     time.Time
	seq    int64
	levels Amounts
	// waits is per dimension in microseconds; -1 marks a cost above capacity.
	waits dimension.Amounts
}

// parseReply decodes a script's integer array reply laid out as {status,
// now[, seq, level1..3[, wait1..3]]}. It never panics on an unexpected shape.
func parseReply(v any) (scriptReply, error) {
	arr, ok := v.([]any)
	if !ok || (len(arr) != 2 && len(arr) != 6 && len(arr) != 9) {
		return scriptReply{}, fmt.Errorf("unexpected script reply %T of %d elements, want 2, 6 or 9 integers", v, lenOf(v))
	}
	var ints [9]int64
	for i, e := range arr {
		x, ok := e.(int64)
		if !ok {
			return scriptReply{}, fmt.Errorf("unexpected script reply element %d: %T, want integer", i, e)
		}
		ints[i] = x
	}
	return scriptReply{
		status: ints[0],
		at:     time.UnixMicro(ints[1]),
		seq:    ints[2],
		levels: Amounts{ints[3], ints[4], ints[5]},
		waits:  Amounts{ints[6], ints[7], ints[8]},
	}, nil
}

func lenOf(v any) int {
	if arr, ok := v.([]any); ok {
		return len(arr)
	}
	return -1
}

// refusal turns a refused or too-large reply into the error callers see. The
// binding dimension is the one that waits longest (or the first too large).
func refusal(pool PoolKey, r scriptReply) *RateLimitedError {
	e := &RateLimitedError{Pool: pool, At: r.at}
	if r.status == statusTooLarge {
		e.TooLarge = true
		for _, d := range dimension.All() {
			if r.waits[d] < 0 {
				e.Binding = d
				break
			}
		}
		return e
	}
	for _, d := range dimension.All() {
		e.Wait[d] = time.Duration(r.waits[d]) * time.Microsecond
		if e.Wait[d] > e.Wait[e.Binding] {
			e.Binding = d
		}
	}
	return e
}
