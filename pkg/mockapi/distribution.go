package mockapi

import (
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
)

// DistributionKind names the shape of a [Distribution].
type DistributionKind string

// Distribution kinds. The zero kind is a constant zero, so a zero
// Distribution turns a latency off.
const (
	// DistZero always draws 0.
	DistZero DistributionKind = ""
	// DistFixed always draws Mean.
	DistFixed DistributionKind = "fixed"
	// DistUniform draws uniformly in [Min, Max].
	DistUniform DistributionKind = "uniform"
	// DistNormal draws from a normal with Mean and StdDev.
	DistNormal DistributionKind = "normal"
	// DistLogNormal draws from the log-normal whose own mean and standard
	// deviation are Mean and StdDev: right-skewed, like real latencies and
	// output lengths.
	DistLogNormal DistributionKind = "lognormal"
	// DistExponential draws from an exponential with Mean.
	DistExponential DistributionKind = "exponential"
)

// Distribution describes a random quantity (seconds for latencies, tokens for
// output lengths). Draws below zero are clamped to zero.
type Distribution struct {
	// Kind is the shape.
	Kind DistributionKind `json:"kind,omitempty"`
	// Mean is used by fixed, normal, lognormal and exponential.
	Mean float64 `json:"mean,omitempty"`
	// StdDev is used by normal and lognormal.
	StdDev float64 `json:"stddev,omitempty"`
	// Min is the lower bound of uniform.
	Min float64 `json:"min,omitempty"`
	// Max is the upper bound of uniform.
	Max float64 `json:"max,omitempty"`
}

// Fixed returns a distribution that always draws v.
func Fixed(v float64) Distribution { return Distribution{Kind: DistFixed, Mean: v} }

// Validate reports a distribution that cannot be drawn from.
func (d Distribution) Validate() error {
	bad := func(f float64) bool { return math.IsNaN(f) || math.IsInf(f, 0) || f < 0 }
	if bad(d.Mean) || bad(d.StdDev) || bad(d.Min) || bad(d.Max) {
		return errors.New("parameters must be finite and non-negative")
	}
	switch d.Kind {
	case DistZero, DistFixed, DistNormal, DistExponential:
		return nil
	case DistUniform:
		if d.Max < d.Min {
			return fmt.Errorf("uniform max %g is below min %g", d.Max, d.Min)
		}
		return nil
	case DistLogNormal:
		if d.Mean == 0 && d.StdDev > 0 {
			return errors.New("lognormal needs a positive mean")
		}
		return nil
	default:
		return fmt.Errorf("unknown distribution %q (want fixed, uniform, normal, lognormal or exponential)", d.Kind)
	}
}

// sample draws one value, never negative.
func (d Distribution) sample(r *rng) float64 {
	var v float64
	switch d.Kind {
	case DistFixed:
		v = d.Mean
	case DistUniform:
		v = d.Min + (d.Max-d.Min)*r.float64()
	case DistNormal:
		v = d.Mean + d.StdDev*r.normal()
	case DistLogNormal:
		if d.Mean <= 0 {
			return 0
		}
		// Parameters of the underlying normal from the target mean and
		// standard deviation: sigma^2 = ln(1 + s^2/m^2), mu = ln m - sigma^2/2.
		s2 := math.Log1p(d.StdDev * d.StdDev / (d.Mean * d.Mean))
		v = math.Exp(math.Log(d.Mean) - s2/2 + math.Sqrt(s2)*r.normal())
	case DistExponential:
		v = d.Mean * r.exponential()
	default:
		return 0
	}
	return max(v, 0)
}

// String renders d in the syntax ParseDistribution reads, in plain numbers.
func (d Distribution) String() string {
	f := func(v float64) string { return strconv.FormatFloat(v, 'g', -1, 64) }
	switch d.Kind {
	case DistZero:
		return "0"
	case DistFixed:
		return "fixed:" + f(d.Mean)
	case DistUniform:
		return "uniform:" + f(d.Min) + "," + f(d.Max)
	case DistNormal, DistLogNormal:
		return string(d.Kind) + ":" + f(d.Mean) + "," + f(d.StdDev)
	case DistExponential:
		return "exponential:" + f(d.Mean)
	default:
		return string(d.Kind)
	}
}

// ParseCountDistribution reads a distribution of plain numbers (token
// counts): "0", "200" (fixed), "fixed:200", "uniform:50,400",
// "normal:200,50", "lognormal:200,120", "exponential:200" (or "exp:200").
func ParseCountDistribution(s string) (Distribution, error) {
	return parseDistribution(s, func(v string) (float64, error) { return strconv.ParseFloat(v, 64) })
}

// ParseDurationDistribution reads a distribution of durations, in seconds:
// the same syntax as ParseCountDistribution with Go durations as values
// ("normal:600ms,150ms", "fixed:20ms").
func ParseDurationDistribution(s string) (Distribution, error) {
	return parseDistribution(s, func(v string) (float64, error) {
		d, err := time.ParseDuration(v)
		return d.Seconds(), err
	})
}

func parseDistribution(s string, value func(string) (float64, error)) (Distribution, error) {
	s = strings.TrimSpace(s)
	if s == "" || s == "0" || s == "none" || s == "off" {
		return Distribution{}, nil
	}
	kind, args, hasKind := strings.Cut(s, ":")
	if !hasKind {
		kind, args = string(DistFixed), s
	}
	if kind == "exp" {
		kind = string(DistExponential)
	}
	parts := strings.Split(args, ",")
	vals := make([]float64, len(parts))
	for i, p := range parts {
		v, err := value(strings.TrimSpace(p))
		if err != nil {
			return Distribution{}, fmt.Errorf("distribution %q: value %q: %w", s, p, err)
		}
		vals[i] = v
	}
	want := map[DistributionKind]int{DistFixed: 1, DistExponential: 1, DistUniform: 2, DistNormal: 2, DistLogNormal: 2}
	d := Distribution{Kind: DistributionKind(kind)}
	n, known := want[d.Kind]
	if !known {
		return Distribution{}, fmt.Errorf("distribution %q: unknown kind %q (want fixed, uniform, normal, lognormal or exponential)", s, kind)
	}
	if len(vals) != n {
		return Distribution{}, fmt.Errorf("distribution %q: %s takes %d value(s), got %d", s, kind, n, len(vals))
	}
	switch d.Kind {
	case DistUniform:
		d.Min, d.Max = vals[0], vals[1]
	case DistNormal, DistLogNormal:
		d.Mean, d.StdDev = vals[0], vals[1]
	default:
		d.Mean = vals[0]
	}
	if err := d.Validate(); err != nil {
		return Distribution{}, fmt.Errorf("distribution %q: %w", s, err)
	}
	return d, nil
}
