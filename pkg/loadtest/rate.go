package loadtest

import (
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
)

// ParseRate reads a request rate written the way users think of it and
// returns requests per second. Accepted forms: "20" (per second), "20/s",
// "1200/m", "1200/min", "5/100ms" and any "N/<Go duration>". Anthropic's
// limits are per minute, so "/m" is the natural unit next to an RPM limit.
func ParseRate(s string) (float64, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return 0, fmt.Errorf("empty rate")
	}
	num, per, hasPer := strings.Cut(s, "/")
	n, err := strconv.ParseFloat(strings.TrimSpace(num), 64)
	if err != nil || math.IsNaN(n) || math.IsInf(n, 0) || n < 0 {
		return 0, fmt.Errorf("rate %q: want a non-negative number of requests, optionally followed by /s, /m or /<duration>", s)
	}
	if !hasPer {
		return n, nil
	}
	unit, err := parseRateUnit(strings.TrimSpace(per))
	if err != nil {
		return 0, fmt.Errorf("rate %q: %w", s, err)
	}
	return n / unit.Seconds(), nil
}

func parseRateUnit(per string) (time.Duration, error) {
	switch per {
	case "s", "sec", "second":
		return time.Second, nil
	case "m", "min", "minute":
		return time.Minute, nil
	case "h", "hour":
		return time.Hour, nil
	}
	if d, err := time.ParseDuration(per); err == nil && d > 0 {
		return d, nil
	}
	return 0, fmt.Errorf("unknown rate unit %q (want s, m, h or a duration such as 100ms)", per)
}

// FormatRate renders requests per second with the per-minute value next to
// it, because limits are quoted per minute.
func FormatRate(perSecond float64) string {
	return fmt.Sprintf("%.2f/s (%.0f/min)", perSecond, perSecond*60)
}
