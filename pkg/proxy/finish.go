package proxy

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"time"

	"github.com/claudecap/claudecap/pkg/dimension"
	"github.com/claudecap/claudecap/pkg/ratelimit"
)

// finish closes an admitted call in the background: settles its reservation
// as decideSettlement says and publishes what the upstream headers reported.
// h is the upstream response's header (nil when none came); it is only read.
func (p *Proxy) finish(c *call, o outcome, h http.Header) {
	p.static.observe(c.class, h)
	s := decideSettlement(c.cost, o)
	var u ratelimit.Upstream
	var parseErr error
	if h != nil {
		u, parseErr = ratelimit.ParseUpstreamHeaders(h, o.Status)
		if s.Kind == settleActual && upstreamKnown(u) {
			// The API reported its buckets as it admitted the call, about when it
			// was sent: the settlement pulls the pool down to them.
			s.Actual.Upstream, s.Actual.UpstreamAge = &u, time.Since(c.start.Add(c.waited))
		}
	}
	defer p.work.done() // The hold taken at admission.
	p.work.run(func() {
		ctx, cancel := context.WithTimeout(context.Background(), p.cfg.SettleTimeout)
		defer cancel()
		p.settle(ctx, c, s)
		if h != nil {
			p.publishUpstream(ctx, c.class, u, parseErr)
		}
		if p.log.Enabled(ctx, slog.LevelDebug) {
			p.log.Debug("call finished", "class", c.class, "status", o.Status, "request_id", h.Get("Request-Id"),
				"reserved_input", c.cost[dimension.InputTokens], "reserved_output", c.cost[dimension.OutputTokens],
				"input", s.Actual.InputTokens, "output", s.Actual.OutputTokens, "exact", s.Exact,
				"waited", c.waited, "duration", time.Since(c.start))
		}
	})
}

// settle applies a settlement decision to the call's reservation.
func (p *Proxy) settle(ctx context.Context, c *call, s settlement) {
	var err error
	result := "exact"
	if s.Kind == settleCancel {
		result = "cancelled"
		err = c.res.Cancel(ctx)
	} else {
		if !s.Exact {
			result = "conservative"
		}
		err = c.res.Settle(ctx, s.Actual)
	}
	if err != nil {
		result = "failed"
		level := slog.LevelWarn
		if errors.Is(err, ratelimit.ErrLeaseExpired) {
			// The reservation stayed charged in full: over-counted, safe.
			level = slog.LevelInfo
		}
		p.log.Log(ctx, level, "settling a reservation failed; it stays charged", "class", c.class, "error", err)
	} else if s.Kind == settleActual {
		p.metrics.settled(c.class, s.Actual)
	}
	p.metrics.settlements.WithLabelValues(c.class, result).Inc()
}

// upstreamKnown reports whether a response carried any rate-limit header.
func upstreamKnown(u ratelimit.Upstream) bool {
	return u.Known()
}

// publishUpstream counts upstream 429s and 529s for the workload and
// publishes the anthropic-ratelimit-* headers (u, parsed with parseErr) to
// the pool state: always for 429 and 529, else at most once per
// PublishInterval per class.
func (p *Proxy) publishUpstream(ctx context.Context, class string, u ratelimit.Upstream, parseErr error) {
	status := u.Status
	limited := status == http.StatusTooManyRequests || status == 529
	if limited {
		sample := ratelimit.UsageSample{RateLimited: 1}
		if status == 529 {
			sample = ratelimit.UsageSample{Overloaded: 1}
		}
		if err := p.limiter.RecordUpstreamErrors(ctx, class, sample); err != nil {
			p.log.Warn("recording an upstream error failed", "class", class, "status", status, "error", err)
		}
	}
	if parseErr != nil {
		p.log.Warn("malformed upstream rate-limit headers", "class", class, "error", parseErr)
	}
	if !upstreamKnown(u) && !limited {
		return
	}
	if !limited && !p.publish.due(class, time.Now()) {
		return
	}
	if err := p.limiter.RecordUpstream(ctx, class, u); err != nil {
		p.log.Warn("publishing upstream rate-limit state failed", "class", class, "error", err)
	}
}
