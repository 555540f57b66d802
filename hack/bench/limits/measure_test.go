package limits

import (
	"math"
	"strconv"
	"time"

	"github.com/claudecap/claudecap/pkg/mockapi"
)

// usage is the mock's own cumulative accounting of the class at one moment: what it
// charged against each limit, and how many 429s it answered.
type usage struct {
	at       time.Time
	charged  perDim
	refused  int64
	byStatus map[string]int64
	refusals map[string]int64
}

// readUsage reads the mock's counters. Input is counted as ITPM counts it: uncached input
// and cache writes, plus cache reads for models whose reads count.
func readUsage(s *mockapi.Server, readsCount bool) usage {
	st := s.Stats()
	u := usage{at: time.Now(), byStatus: st.ByStatus, refusals: st.RateLimited}
	cs := st.Classes[class]
	u.charged[dimRequests] = float64(cs.Admitted)
	u.charged[dimInput] = float64(cs.Tokens.Input + cs.Tokens.CacheCreationInput)
	if readsCount {
		u.charged[dimInput] += float64(cs.Tokens.CacheReadInput)
	}
	u.charged[dimOutput] = float64(cs.Tokens.Output)
	u.refused = st.ByStatus[strconv.Itoa(429)]
	return u
}

// perMinute is the usage rate between two readings. Output is charged when a call ends, so
// in a steady state it runs at the rate calls are admitted, shifted by their length.
func perMinute(from, to usage) perDim {
	var r perDim
	mins := to.at.Sub(from.at).Minutes()
	if mins <= 0 {
		return r
	}
	for d := range dimCount {
		r[d] = (to.charged[d] - from.charged[d]) / mins
	}
	return r
}

// shareOf divides a rate by limits per dimension; an unlimited dimension has no share (0).
func shareOf(rate, limits perDim) perDim {
	var s perDim
	for d := range dimCount {
		if limits[d] > 0 {
			s[d] = rate[d] / limits[d]
		}
	}
	return s
}

// mostUsed is the dimension with the highest share: the one that bound.
func mostUsed(share perDim) dimension {
	best := dimRequests
	for d := range dimCount {
		if share[d] > share[best] {
			best = d
		}
	}
	return best
}

// tracePoint is one second of a row's trace (trace.json), for reading a row's story after
// the fact: what the mock had charged and refused so far, and the pool's raw bucket.
type tracePoint struct {
	// T is seconds since the origin, to the millisecond.
	T float64 `json:"t"`
	// Charged is the mock's cumulative charge per dimension, Refused its 429s so far.
	Charged [dimCount]int64 `json:"mock_charged"`
	Refused int64           `json:"mock_429s"`
	// Pool is the pool's bucket as last written (claudecap rows while Redis answers).
	Pool *poolPoint `json:"pool,omitempty"`
}

// poolPoint is the pool's raw bucket: levels before the refill since AgeSeconds ago, and
// the output held by calls under way (available output is level - held).
type poolPoint struct {
	Level      [dimCount]int64 `json:"level"`
	Held       int64           `json:"held"`
	AgeSeconds float64         `json:"age_seconds"`
}

// newTracePoint rounds a reading for the trace.
func newTracePoint(u usage, origin time.Time) tracePoint {
	p := tracePoint{T: millis(u.at.Sub(origin).Seconds()), Refused: u.refused}
	for d, v := range u.charged {
		p.Charged[d] = int64(math.Round(v))
	}
	return p
}

// newPoolPoint rounds a pool bucket for the trace.
func newPoolPoint(level [dimCount]float64, held float64, age time.Duration) *poolPoint {
	p := &poolPoint{Held: int64(math.Round(held)), AgeSeconds: millis(age.Seconds())}
	for d, v := range level {
		p.Level[d] = int64(math.Round(v))
	}
	return p
}

func millis(s float64) float64 { return math.Round(s*1000) / 1000 }
