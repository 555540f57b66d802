package mockapi

import "math"

// rng is a splitmix64 generator. Each request gets its own, seeded from the
// server seed and the request's sequence number, so a run replays exactly for
// the same seed and arrival order no matter how goroutines interleave, and no
// lock or allocation is needed to draw numbers.
type rng struct{ state uint64 }

// newRNG derives the generator of request seq under seed.
func newRNG(seed, seq uint64) rng {
	mixer := rng{state: seq}
	return rng{state: seed ^ mixer.next()}
}

// next returns 64 uniformly distributed bits.
func (r *rng) next() uint64 {
	r.state += 0x9e3779b97f4a7c15
	z := r.state
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9
	z = (z ^ (z >> 27)) * 0x94d049bb133111eb
	return z ^ (z >> 31)
}

// float64 is uniform in [0, 1).
func (r *rng) float64() float64 { return float64(r.next()>>11) / (1 << 53) }

// normal is a standard normal draw (Box-Muller; the second value is dropped
// to keep the generator stateless beyond one word).
func (r *rng) normal() float64 {
	u1 := 1 - r.float64() // (0, 1]: log(0) would be -Inf
	u2 := r.float64()
	return math.Sqrt(-2*math.Log(u1)) * math.Cos(2*math.Pi*u2)
}

// exponential is an exponential draw with mean 1.
func (r *rng) exponential() float64 { return -math.Log(1 - r.float64()) }

// intn is uniform in [0, n) for n > 0.
func (r *rng) intn(n int) int { return int(r.float64() * float64(n)) }
