package queue

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"

	capacityv1alpha1 "github.com/claudecap/claudecap/api/v1alpha1"
	"github.com/claudecap/claudecap/pkg/capacity"
	"github.com/claudecap/claudecap/pkg/redispool"
)

// Where a Redis queue's backlog came from.
const (
	// BacklogListLength is LLEN of the list: exact.
	BacklogListLength BacklogSource = "ListLength"
	// BacklogGroupLag is the consumer group's lag from XINFO GROUPS: exact.
	BacklogGroupLag BacklogSource = "GroupLag"
	// BacklogStreamLength is XLEN, used when Redis cannot tell the lag. It is
	// an upper bound: it also counts entries already delivered that nobody
	// trimmed yet, so demand errs high, never toward scaling in.
	BacklogStreamLength BacklogSource = "StreamLength"
)

// RedisQueue says which keys hold the jobs. Set List (and optionally
// ProcessingList), or Stream and ConsumerGroup; the API server enforces the
// same rule with CEL.
type RedisQueue struct {
	// List is the Redis list of waiting jobs.
	List string
	// ProcessingList is the list reliable-queue workers LMOVE jobs into while
	// they work on them; empty when workers do not use one.
	ProcessingList string
	// Stream is the Redis stream of jobs.
	Stream string
	// ConsumerGroup is the group whose workers read Stream.
	ConsumerGroup string
}

// String names the queue for errors and logs, e.g. `list "jobs"`.
func (q RedisQueue) String() string {
	if q.Stream != "" {
		return fmt.Sprintf("stream %q group %q", q.Stream, q.ConsumerGroup)
	}
	return fmt.Sprintf("list %q", q.List)
}

func (q RedisQueue) validate() error {
	switch {
	case q.List != "" && q.Stream != "":
		return errors.New("queue sets both a list and a stream; set one")
	case q.List == "" && q.Stream == "":
		return errors.New("queue sets neither a list nor a stream")
	case q.Stream != "" && q.ConsumerGroup == "":
		return fmt.Errorf("queue stream %q needs a consumer group", q.Stream)
	case q.List != "" && q.ConsumerGroup != "":
		return errors.New("queue consumer group applies only to a stream")
	case q.Stream != "" && q.ProcessingList != "":
		return errors.New("queue processing list applies only to a list")
	case q.List != "" && q.List == q.ProcessingList:
		return fmt.Errorf("queue list %q is also its processing list", q.List)
	}
	return nil
}

// RedisSettings are a Redis queue with its server's password already read.
type RedisSettings struct {
	// Connection is the server.
	Connection redispool.Connection
	// Queue is the list or stream.
	Queue RedisQueue
}

// String names the queue and the server, e.g. `list "jobs" on redis:6379`.
func (s RedisSettings) String() string {
	return s.Queue.String() + " on " + s.Connection.Address
}

// Open leases a client for the server from env.Redis.
func (s RedisSettings) Open(env Env) (Source, error) {
	return OpenRedis(env, s.Connection, s.Queue)
}

// resolveRedis reads spec.queue.redis, the password from its labelled Secret.
func resolveRedis(ctx context.Context, spec *capacityv1alpha1.Queue, creds Credentials) (Settings, error) {
	r := spec.Redis
	password, err := redisPassword(ctx, creds, r.PasswordSecretRef)
	if err != nil {
		return nil, err
	}
	return RedisSettings{
		Connection: redispool.Connection{Address: r.Address, Password: password, TLS: r.TLS, Database: int(r.Database)},
		Queue:      RedisQueue{List: r.List, ProcessingList: r.ProcessingList, Stream: r.Stream, ConsumerGroup: r.ConsumerGroup},
	}, nil
}

// redisPassword reads a Redis password from a Secret labelled
// capacityv1alpha1.LabelRedisCredentials; "" without a ref.
func redisPassword(ctx context.Context, creds Credentials, ref *capacityv1alpha1.SecretKeyRef) (string, error) {
	if ref == nil {
		return "", nil
	}
	password, found, err := creds.Value(ctx, capacityv1alpha1.LabelRedisCredentials, ref.Name, ref.Key)
	if err != nil {
		return "", fmt.Errorf("reading the Redis password: %w", err)
	}
	if !found {
		return "", fmt.Errorf("%w: secret %s has no key %q for the Redis password", ErrCredentials, ref.Name, ref.Key)
	}
	return password, nil
}

// RedisSource polls a Redis list or stream over a client shared with every
// other user of the same server (redispool). Each poll sends all of its
// commands in ONE MULTI/EXEC round trip, which also makes the counts a
// consistent snapshot: a job moved from the list into the processing list is
// never counted twice or missed.
type RedisSource struct {
	lease   *redispool.Lease
	address string
	queue   RedisQueue
	timeout time.Duration
	now     func() time.Time
}

// OpenRedis validates the settings and leases a shared client for conn from
// env.Redis. Close the source to give the lease back.
func OpenRedis(env Env, conn redispool.Connection, q RedisQueue) (*RedisSource, error) {
	if err := q.validate(); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	if env.Redis == nil {
		return nil, fmt.Errorf("%w: no Redis client pool to lease from", ErrInvalid)
	}
	lease, err := env.Redis.Acquire(conn)
	if errors.Is(err, redispool.ErrPoolClosed) {
		return nil, fmt.Errorf("%w: %w", ErrUnavailable, err)
	}
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	env = env.withDefaults()
	return &RedisSource{lease: lease, address: conn.Address, queue: q, timeout: env.Timeout, now: env.Now}, nil
}

// Close releases the source's lease on the shared client. It is idempotent.
func (r *RedisSource) Close() {
	r.lease.Release()
}

// Poll reads the queue's backlog, in-flight count and (for streams) completion
// counter in one round trip. Errors wrap one of ErrUnavailable, ErrAuth,
// ErrQueueNotFound, ErrWrongType or ErrBadReply.
func (r *RedisSource) Poll(ctx context.Context) (Sample, error) {
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

func (r *RedisSource) pollList(ctx context.Context) (Sample, error) {
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

func (r *RedisSource) pollStream(ctx context.Context) (Sample, error) {
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
// go-redis errors carry the address and the server's message only, never the
// password (a test holds that line).
func (r *RedisSource) firstError(execErr error, cmds ...redis.Cmder) error {
	for _, c := range cmds {
		if err := c.Err(); err != nil {
			return pollError(r.queue, r.address, classifyRedis(err), err)
		}
	}
	if execErr != nil {
		return pollError(r.queue, r.address, classifyRedis(execErr), execErr)
	}
	return nil
}

// classifyRedis maps a go-redis error to a kind of failure. Errors that are
// not replies from the server (dial, timeouts, closed connections, a closed
// client) mean the server is unavailable.
func classifyRedis(err error) error {
	var reply redis.Error
	switch {
	case redis.IsAuthError(err) || redis.IsPermissionError(err):
		return ErrAuth
	case redis.HasErrorPrefix(err, "WRONGTYPE"):
		return ErrWrongType
	case redis.HasErrorPrefix(err, "NOGROUP") || redis.HasErrorPrefix(err, "no such key"):
		return ErrQueueNotFound
	case redis.IsLoadingError(err) || redis.IsMasterDownError(err) || redis.IsTryAgainError(err) ||
		redis.IsClusterDownError(err) || redis.IsMaxClientsError(err) || redis.HasErrorPrefix(err, "BUSY"):
		return ErrUnavailable
	case errors.As(err, &reply):
		return ErrBadReply
	default:
		return ErrUnavailable
	}
}

// listSample builds a list queue's sample. Lists keep no record of finished
// jobs, so Completed is unknown and the estimator counts only queue growth.
func listSample(backlog, inFlight int64) Sample {
	return Sample{
		QueueSample:   capacity.QueueSample{Backlog: backlog, InFlight: inFlight},
		BacklogSource: BacklogListLength,
	}
}

// streamSample builds a stream queue's sample from the group's XINFO entry,
// its pending count and the stream length.
//
// Completed is entries-read minus pending: every entry delivered to the group
// is either still pending or acknowledged. With backlog = lag = entries added
// minus entries read, backlog + in-flight + completed equals the stream's
// entries-added counter, so the estimator's arrivals are exactly the entries
// added between polls. The counter is only claimed when lag and entries-read
// are both known and consistent.
func streamSample(g groupInfo, pending, length int64) Sample {
	s := Sample{QueueSample: capacity.QueueSample{InFlight: pending}}
	if g.lagKnown {
		s.Backlog, s.BacklogSource = g.lag, BacklogGroupLag
	} else {
		s.Backlog, s.BacklogSource = length, BacklogStreamLength
	}
	if g.lagKnown && g.entriesReadKnown && g.entriesRead >= pending {
		s.Completed, s.CompletedKnown = g.entriesRead-pending, true
	}
	return s
}
