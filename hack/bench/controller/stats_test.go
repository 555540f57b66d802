package controllerbench

import (
	"math"
	"slices"
	"time"
)

// percentile is the nearest-rank percentile (0 < p <= 100) of samples: the smallest value
// with at least p% of the samples at or below it. No interpolation, so a reported p99 is a
// latency some trial really had.
func percentile(samples []time.Duration, p float64) time.Duration {
	if len(samples) == 0 {
		return 0
	}
	sorted := slices.Clone(samples)
	slices.Sort(sorted)
	rank := int(math.Ceil(p / 100 * float64(len(sorted))))
	return sorted[min(max(rank, 1), len(sorted))-1]
}

// Documented defaults of the usual alternative: KEDA's ScaledObject polls its scaler every
// pollingInterval (30 s) and the HPA that KEDA creates syncs every 15 s
// (--horizontal-pod-autoscaler-sync-period). Neither can run here, so their reaction time
// is computed, not measured.
const (
	kedaPollingInterval = 30 * time.Second
	hpaSyncPeriod       = 15 * time.Second
)

// uniformSumQuantile is the q-quantile (0 <= q <= 1) of U(0,a) + U(0,b): the delay of a
// change that waits for one periodic loop of period a and then another of period b, each
// at an independent, uniformly random phase. The distribution is a trapezoid on [0, a+b].
func uniformSumQuantile(a, b time.Duration, q float64) time.Duration {
	long, short := float64(max(a, b)), float64(min(a, b))
	var s float64
	switch {
	case short == 0:
		s = q * long
	case q <= short/(2*long):
		s = math.Sqrt(2 * long * short * q)
	case q <= 1-short/(2*long):
		s = q*long + short/2
	default:
		s = long + short - math.Sqrt(2*long*short*(1-q))
	}
	return time.Duration(s)
}

// verdict words a target check for the printed summary.
func verdict(met bool) string {
	if met {
		return "met"
	}
	return "MISSED"
}

// loadAverage is the 1, 5 and 15 minute load averages, printed next to results because
// the machine is shared.
