package mockapi

import (
	"math"
	"time"
)

// seconds converts a drawn latency to a duration.
func seconds(v float64) time.Duration {
	if v <= 0 || math.IsNaN(v) {
		return 0
	}
	if v > float64(math.MaxInt64)/float64(time.Second) {
		return time.Duration(math.MaxInt64)
	}
	return time.Duration(v * float64(time.Second))
}
