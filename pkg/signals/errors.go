package signals

import (
	"errors"
	"fmt"

	"github.com/redis/go-redis/v9"
)

// Kinds of poll failure. Every error from Poll wraps exactly one of them (and
// the cause), so the controller can pick a condition reason with errors.Is.
var (
	// ErrUnavailable means Redis could not be reached, did not answer within
	// the timeout, or is not serving yet (loading, failing over). It is
	// transient: hold replicas and poll again.
	ErrUnavailable = errors.New("redis unavailable")
	// ErrAuth means Redis refused the credentials or the user may not run the
	// poll's commands. Retrying will not help until the Secret changes.
	ErrAuth = errors.New("redis refused access")
	// ErrQueueNotFound means the stream or its consumer group does not exist.
	// An empty list does not exist in Redis either, so a missing list is not
	// an error: it reads as backlog 0.
	ErrQueueNotFound = errors.New("queue not found")
	// ErrWrongType means the key holds another type (a list where a stream
	// was configured, or the reverse).
	ErrWrongType = errors.New("queue key has the wrong type")
	// ErrBadReply means Redis answered something this package does not
	// understand, or refused the query for another reason.
	ErrBadReply = errors.New("unexpected redis reply")
)

// classify maps a go-redis error to one of the kinds above. Errors that are not
// replies from the server (dial, timeouts, closed connections, a closed
// client) mean the server is unavailable.
func classify(err error) error {
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

// pollError wraps a failure with the queue and the server address (never the
// password: go-redis errors carry the address and the server's message only,
// and a test holds that line).
func pollError(q Queue, address string, kind, cause error) error {
	return fmt.Errorf("reading %s on %s: %w: %w", q, address, kind, cause)
}
