package mockapi

// fault is the injected failure of one request, if any.
type fault int

const (
	faultNone fault = iota
	faultOverloaded
	faultAPIError
	faultDropped
	faultStreamError
)

// faultNames are the keys of /mock/stats "faults".
var faultNames = [...]string{faultOverloaded: "overloaded", faultAPIError: "api_error", faultDropped: "dropped", faultStreamError: "stream_error"}

// rollFault decides a request's fault with one uniform draw laid over the
// configured rates, so the faults are mutually exclusive and each occurs at
// exactly its rate. Mid-stream errors only apply to streaming requests; a
// non-streaming request that rolls one runs normally.
func rollFault(f *Faults, r *rng, streaming bool) fault {
	if *f == (Faults{}) {
		return faultNone
	}
	u := r.float64()
	for _, c := range [...]struct {
		p float64
		f fault
	}{{f.Overloaded, faultOverloaded}, {f.APIError, faultAPIError}, {f.Dropped, faultDropped}, {f.StreamError, faultStreamError}} {
		if u < c.p {
			if c.f == faultStreamError && !streaming {
				return faultNone
			}
			return c.f
		}
		u -= c.p
	}
	return faultNone
}
