package signals

import (
	"errors"
	"fmt"
)

// Queue says which keys hold the jobs. Set List (and optionally
// ProcessingList), or Stream and ConsumerGroup; the API server enforces the
// same rule with CEL.
type Queue struct {
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
func (q Queue) String() string {
	if q.Stream != "" {
		return fmt.Sprintf("stream %q group %q", q.Stream, q.ConsumerGroup)
	}
	return fmt.Sprintf("list %q", q.List)
}

func (q Queue) validate() error {
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
