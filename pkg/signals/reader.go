package signals

import (
	"context"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"
)

// ReaderOptions tunes a Reader. Zero values take the defaults.
type ReaderOptions struct {
	// Timeout bounds one poll, queueing for a connection included
	// (DefaultTimeout).
	Timeout time.Duration
	// Now stamps samples; time.Now when nil.
	Now func() time.Time
}

// Reader polls one queue. It is safe for concurrent use, though the
// controller polls each queue from one reconcile at a time.
type Reader struct {
	lease   *Lease
	address string
	queue   Queue
	timeout time.Duration
	now     func() time.Time
}

// NewReader validates the settings and leases a shared client for conn from
// the pool. Close the reader to give the lease back.
func (p *Pool) NewReader(conn Connection, q Queue, opts ReaderOptions) (*Reader, error) {
	if err := q.validate(); err != nil {
		return nil, err
	}
	lease, err := p.Acquire(conn)
	if err != nil {
		return nil, err
	}
	if opts.Timeout <= 0 {
		opts.Timeout = DefaultTimeout
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	return &Reader{lease: lease, address: conn.Address, queue: q, timeout: opts.Timeout, now: opts.Now}, nil
}

// Close releases the reader's lease on the shared client. It is idempotent.
func (r *Reader) Close() {
	r.lease.Release()
}

// Queue is the queue this reader polls.
func (r *Reader) Queue() Queue {
	return r.queue
}

// Poll reads the queue's backlog, in-flight count and (for streams) completion
// counter in one round trip. The sample is stamped when the reply arrived.
// Errors name the queue and the address, wrap one of ErrUnavailable, ErrAuth,
// ErrQueueNotFound, ErrWrongType or ErrBadReply, and never hold the password.
func (r *Reader) Poll(ctx context.Context) (Sample, error) {
	ctx, cancel := context.WithTimeout(ctx, r.timeout)
	defer cancel()
	var (
		s   Sample
		err error
	)
	if r.queue.Stream != "" {
		s, err = r.pollStream(ctx)
	} else {
		s, err = r.pollList(ctx)
	}
	if err != nil {
		return Sample{}, err
	}
	s.Time = r.now()
	return s, nil
}

func (r *Reader) pollList(ctx context.Context) (Sample, error) {
	var backlog, inFlight *redis.IntCmd
	_, execErr := r.lease.Client().TxPipelined(ctx, func(p redis.Pipeliner) error {
		backlog = p.LLen(ctx, r.queue.List)
		if r.queue.ProcessingList != "" {
			inFlight = p.LLen(ctx, r.queue.ProcessingList)
		}
		return nil
	})
	cmds := []redis.Cmder{backlog}
	if inFlight != nil {
		cmds = append(cmds, inFlight)
	}
	if err := r.firstError(execErr, cmds...); err != nil {
		return Sample{}, err
	}
	var n int64
	if inFlight != nil {
		n = inFlight.Val()
	}
	return listSample(backlog.Val(), n), nil
}

func (r *Reader) pollStream(ctx context.Context) (Sample, error) {
	var (
		groups  *redis.Cmd
		pending *redis.XPendingCmd
		length  *redis.IntCmd
	)
	_, execErr := r.lease.Client().TxPipelined(ctx, func(p redis.Pipeliner) error {
		// Parsed here rather than by go-redis's XInfoGroups, which reads a
		// missing lag (Redis 6) as 0, an empty queue.
		groups = p.Do(ctx, "XINFO", "GROUPS", r.queue.Stream)
		pending = p.XPending(ctx, r.queue.Stream, r.queue.ConsumerGroup)
		length = p.XLen(ctx, r.queue.Stream)
		return nil
	})
	if err := r.firstError(execErr, groups, pending, length); err != nil {
		return Sample{}, err
	}
	all, err := parseGroups(groups.Val())
	if err != nil {
		return Sample{}, pollError(r.queue, r.address, ErrBadReply, err)
	}
	g, ok := findGroup(all, r.queue.ConsumerGroup)
	if !ok {
		return Sample{}, pollError(r.queue, r.address, ErrQueueNotFound,
			fmt.Errorf("the stream has no consumer group %q", r.queue.ConsumerGroup))
	}
	return streamSample(g, pending.Val().Count, length.Val()), nil
}

// firstError reports the first failed command, which says more than the
// transaction's overall error (EXECABORT hides why a command was refused).
func (r *Reader) firstError(execErr error, cmds ...redis.Cmder) error {
	for _, c := range cmds {
		if err := c.Err(); err != nil {
			return pollError(r.queue, r.address, classify(err), err)
		}
	}
	if execErr != nil {
		return pollError(r.queue, r.address, classify(execErr), execErr)
	}
	return nil
}
