package loadtest

import (
	"fmt"
	"math"
	"math/rand/v2"
	"time"
)

// Arrival is how requests are spaced within a rate profile.
type Arrival string

const (
	// ArrivalConstant spaces requests evenly: the n-th request is sent when
	// the profile's expected arrival count reaches n. This is what vegeta,
	// wrk2 and k6's constant-arrival-rate executor do.
	ArrivalConstant Arrival = "constant"
	// ArrivalPoisson draws exponential gaps, so arrivals form a Poisson
	// process with the profile's (possibly varying) rate. Independent users
	// arrive like this, and it exercises burst tolerance that even spacing
	// hides.
	ArrivalPoisson Arrival = "poisson"
)

// ParseArrival turns a flag value into an Arrival.
func ParseArrival(s string) (Arrival, error) {
	switch a := Arrival(s); a {
	case ArrivalConstant, ArrivalPoisson:
		return a, nil
	default:
		return "", fmt.Errorf("unknown arrival process %q (want %q or %q)", s, ArrivalConstant, ArrivalPoisson)
	}
}

// Schedule produces the intended send times of an open-loop test as offsets
// from its start. It is deterministic for a given profile, arrival process
// and seed, and does no I/O, so its accuracy is tested exactly.
//
// It works by time rescaling: the n-th arrival happens where the cumulative
// expected arrival count Λ(t) (the integral of the rate) reaches a target
// that grows by 1 per arrival (constant spacing) or by an Exp(1) draw per
// arrival (Poisson). Inverting Λ segment by segment keeps each step O(1).
type Schedule struct {
	profile RateProfile
	arrival Arrival
	rng     *rand.Rand

	// target is Λ at the next arrival.
	target float64
	// seg indexes the current segment; segStart and segCum are its start
	// offset in seconds and Λ at that start.
	seg      int
	segStart float64
	segCum   float64
}

// NewSchedule validates the profile and returns a schedule positioned at
// the first arrival.
func NewSchedule(p RateProfile, a Arrival, seed uint64) (*Schedule, error) {
	if err := p.Validate(); err != nil {
		return nil, err
	}
	if _, err := ParseArrival(string(a)); err != nil {
		return nil, err
	}
	s := &Schedule{
		profile: p,
		arrival: a,
		// Load shaping needs reproducibility, not unpredictability.
		rng: rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15)), //nolint:gosec // G404: arrival jitter is not security-sensitive.
	}
	if a == ArrivalPoisson {
		s.target = s.rng.ExpFloat64()
	}
	return s, nil
}

// Next returns the offset of the next intended send and advances. ok is
// false when no request will ever be due again (the profile ends at rate 0).
func (s *Schedule) Next() (offset time.Duration, ok bool) {
	at, ok := s.locate(s.target)
	if !ok {
		return 0, false
	}
	if s.arrival == ArrivalPoisson {
		s.target += s.rng.ExpFloat64()
	} else {
		s.target++
	}
	return time.Duration(at * float64(time.Second)), true
}

// locate returns the time in seconds at which Λ reaches want, moving the
// segment cursor forward; targets only grow, so the cursor never goes back.
func (s *Schedule) locate(want float64) (float64, bool) {
	for s.seg < len(s.profile.Segments) {
		seg := s.profile.Segments[s.seg]
		total := segmentIntegral(seg, seg.Duration.Seconds())
		if want < s.segCum+total {
			return s.segStart + segmentInverse(seg, want-s.segCum), true
		}
		s.segCum += total
		s.segStart += seg.Duration.Seconds()
		s.seg++
	}
	hold := s.profile.holdRate()
	if hold <= 0 {
		return 0, false
	}
	at := s.segStart + (want-s.segCum)/hold
	if math.IsInf(at, 0) || at > float64(math.MaxInt64)/float64(time.Second) {
		return 0, false
	}
	return at, true
}
