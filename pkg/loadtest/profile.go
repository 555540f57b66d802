package loadtest

import (
	"errors"
	"fmt"
	"math"
	"time"
)

// Segment is one stretch of a RateProfile during which the arrival rate
// changes linearly from From to To requests per second. A segment with
// From == To holds the rate constant.
type Segment struct {
	// Duration is how long the segment lasts; it must be positive.
	Duration time.Duration
	// From is the rate at the start of the segment, in requests per second.
	From float64
	// To is the rate at the end of the segment, in requests per second.
	To float64
}

// RateProfile is the target arrival rate of an open-loop test as a function
// of time since the start. It is a list of linear segments; after the last
// one the rate holds at the last segment's To, so a one-segment constant
// profile runs until the test's duration or request bound stops it.
//
// Linear segments are enough for constant, ramp and step shapes, and they
// keep the cumulative expected arrival count a piecewise quadratic whose
// inverse has a closed form (see Schedule).
type RateProfile struct {
	Segments []Segment
}

// ConstantProfile returns a profile that sends rate requests per second for
// as long as the test runs.
func ConstantProfile(rate float64) RateProfile {
	return RateProfile{Segments: []Segment{{Duration: time.Second, From: rate, To: rate}}}
}

// RampProfile rises (or falls) linearly from `from` to `to` requests per
// second over rampFor, then holds at `to`. Anthropic applies acceleration
// limits to sharp traffic increases, so a ramp is how a test should approach
// a high rate.
func RampProfile(from, to float64, rampFor time.Duration) RateProfile {
	return RateProfile{Segments: []Segment{{Duration: rampFor, From: from, To: to}}}
}

// StepProfile starts at `start` requests per second and adds `step` every
// stepFor, for steps stages in total, then holds at the last stage's rate.
func StepProfile(start, step float64, stepFor time.Duration, steps int) RateProfile {
	segs := make([]Segment, 0, steps)
	for i := range steps {
		r := start + float64(i)*step
		segs = append(segs, Segment{Duration: stepFor, From: r, To: r})
	}
	return RateProfile{Segments: segs}
}

// Validate reports whether the profile can drive a schedule: at least one
// segment, positive durations, finite non-negative rates, and some positive
// rate somewhere (otherwise no request would ever be sent).
func (p RateProfile) Validate() error {
	if len(p.Segments) == 0 {
		return errors.New("rate profile has no segments")
	}
	anyPositive := false
	for i, s := range p.Segments {
		if s.Duration <= 0 {
			return fmt.Errorf("rate profile segment %d: duration must be positive, got %s", i, s.Duration)
		}
		for _, r := range []float64{s.From, s.To} {
			if math.IsNaN(r) || math.IsInf(r, 0) || r < 0 {
				return fmt.Errorf("rate profile segment %d: rate must be a finite number >= 0, got %v", i, r)
			}
			if r > 0 {
				anyPositive = true
			}
		}
	}
	if !anyPositive {
		return errors.New("rate profile never sends: every rate is 0")
	}
	return nil
}

// Length is the total duration of the segments, after which the rate holds.
func (p RateProfile) Length() time.Duration {
	var d time.Duration
	for _, s := range p.Segments {
		d += s.Duration
	}
	return d
}

// holdRate is the rate after the last segment.
func (p RateProfile) holdRate() float64 {
	return p.Segments[len(p.Segments)-1].To
}

// RateAt returns the target rate in requests per second at offset t.
func (p RateProfile) RateAt(t time.Duration) float64 {
	for _, s := range p.Segments {
		if t < s.Duration {
			frac := float64(t) / float64(s.Duration)
			return s.From + (s.To-s.From)*frac
		}
		t -= s.Duration
	}
	return p.holdRate()
}

// ExpectedArrivals is the integral of the rate from 0 to t: how many
// requests a test of length t is planned to send. The safety check uses it
// to decide whether a run against the real API is "large".
func (p RateProfile) ExpectedArrivals(t time.Duration) float64 {
	total := 0.0
	for _, s := range p.Segments {
		if t <= 0 {
			return total
		}
		d := min(t, s.Duration)
		total += segmentIntegral(s, d.Seconds())
		t -= d
	}
	if t > 0 {
		total += p.holdRate() * t.Seconds()
	}
	return total
}

// segmentIntegral is the expected arrivals in the first x seconds of s.
func segmentIntegral(s Segment, x float64) float64 {
	slope := (s.To - s.From) / s.Duration.Seconds()
	return s.From*x + slope*x*x/2
}

// segmentInverse returns the x in [0, s.Duration] seconds at which the
// expected arrivals within s reach want. want must not exceed the segment's
// total. It solves From*x + slope*x²/2 = want in the form
// x = 2*want / (From + sqrt(From² + 2*slope*want)), which stays accurate
// when the slope is tiny and handles falling rates.
func segmentInverse(s Segment, want float64) float64 {
	if want <= 0 {
		return 0
	}
	slope := (s.To - s.From) / s.Duration.Seconds()
	disc := s.From*s.From + 2*slope*want
	if disc < 0 {
		// Only reachable through rounding at the very end of a falling
		// segment; the end of the segment is the answer.
		return s.Duration.Seconds()
	}
	denom := s.From + math.Sqrt(disc)
	if denom <= 0 {
		return s.Duration.Seconds()
	}
	return math.Min(2*want/denom, s.Duration.Seconds())
}
