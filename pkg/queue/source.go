package queue

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/claudecap/claudecap/pkg/capacity"
	"github.com/claudecap/claudecap/pkg/redispool"
)

// DefaultTimeout bounds one poll of any source. A queue signal older than the
// poll interval is worth little; waiting longer only delays the reconcile that
// holds replicas on missing data.
const DefaultTimeout = redispool.DefaultTimeout

// Source reads one queue. Poll is called by one reconcile at a time; Close
// gives back whatever the source holds (a lease on a shared client, idle
// connections).
type Source interface {
	// Poll reads the queue's backlog and in-flight count (and a completion
	// counter where the queue keeps one), stamped when the reply arrived.
	// Errors name the queue and its server, wrap one of the error kinds of
	// this package, and never hold a credential.
	Poll(ctx context.Context) (Sample, error)
	// Close releases the source. It is idempotent.
	Close()
}

// Settings are one source's settings with its credentials already read: what
// Resolve returns for a ClaudeCapacity's spec.queue. They are comparable, so
// the controller keeps one open Source while the settings stay equal and
// opens a new one when they change (an edited spec, a rotated password).
type Settings interface {
	// String names the queue and its server for status and events, never a
	// credential.
	String() string
	// Open builds the source. It does not reach the server: the first Poll does.
	Open(env Env) (Source, error)
}

// Env is what every source is opened with.
type Env struct {
	// Redis is the client pool that Redis sources lease from; required by them.
	Redis *redispool.Pool
	// Timeout bounds one poll, waiting for a connection included
	// (DefaultTimeout when zero).
	Timeout time.Duration
	// Now stamps samples (time.Now when nil).
	Now func() time.Time
}

func (e Env) withDefaults() Env {
	if e.Timeout <= 0 {
		e.Timeout = DefaultTimeout
	}
	if e.Now == nil {
		e.Now = time.Now
	}
	return e
}

// Credentials reads credential values for a source from the workload's
// namespace. The controller implements it: only Secrets carrying label set to
// "true" are read, so a tenant cannot have any other Secret sent to a server
// of their choosing.
type Credentials interface {
	// Value returns key of the Secret name, which must carry label=true.
	// found is false when the Secret has no such key. Errors wrap
	// ErrCredentials.
	Value(ctx context.Context, label, name, key string) (value string, found bool, err error)
}

// BacklogSource says which figure a backlog came from, so a status message can
// say when it is an upper bound rather than an exact count.
type BacklogSource string

// Sample is one poll of a queue: the capacity.QueueSample the arrival
// estimator and demand consume, plus where the backlog came from.
type Sample struct {
	capacity.QueueSample
	// BacklogSource says how Backlog was measured.
	BacklogSource BacklogSource
}

// Kinds of failure. Every error from Resolve, Open and Poll wraps at most one
// of them (and the cause), so the controller can pick a condition reason with
// errors.Is.
var (
	// ErrCredentials means the source's credentials could not be read: the
	// Secret is missing, not labelled for this use, or lacks a key.
	ErrCredentials = errors.New("queue credentials unavailable")
	// ErrUnavailable means the server could not be reached, did not answer
	// within the timeout, or is not serving yet. It is transient: hold
	// replicas and poll again.
	ErrUnavailable = errors.New("queue server unavailable")
	// ErrAuth means the server refused the credentials or the caller may not
	// read the queue. Retrying will not help until the Secret changes.
	ErrAuth = errors.New("queue server refused access")
	// ErrQueueNotFound means the queue (a stream, its consumer group, an SQS
	// queue) does not exist. An empty Redis list does not exist in Redis
	// either, so a missing list is not an error: it reads as backlog 0.
	ErrQueueNotFound = errors.New("queue not found")
	// ErrWrongType means a Redis key holds another type (a list where a
	// stream was configured, or the reverse).
	ErrWrongType = errors.New("queue key has the wrong type")
	// ErrBadReply means the server answered something this package does not
	// understand, or refused the query for another reason.
	ErrBadReply = errors.New("unexpected reply from the queue server")
	// ErrInvalid means the settings are not usable (CEL refuses most such
	// specs before they reach the controller).
	ErrInvalid = errors.New("invalid queue settings")
)

// pollError wraps a failure with the queue and its server (never a credential).
func pollError(queue fmt.Stringer, server string, kind, cause error) error {
	return fmt.Errorf("reading %s on %s: %w: %w", queue, server, kind, cause)
}
