package queue

import (
	"context"
	"fmt"
	"strings"

	capacityv1alpha1 "github.com/claudecap/claudecap/api/v1alpha1"
)

// kind is one queue source: its field under spec.queue and how its settings
// are read from there.
type kind struct {
	// field is the source's field under spec.queue.
	field string
	// set says whether spec uses this source.
	set func(spec *capacityv1alpha1.Queue) bool
	// resolve returns the source's settings from a spec that uses it, reading
	// credentials through creds.
	resolve func(ctx context.Context, spec *capacityv1alpha1.Queue, creds Credentials) (Settings, error)
}

// kinds are the queue sources. Adding one is a file with its resolve function
// and Source, one line here, and its field under capacityv1alpha1.Queue.
var kinds = []kind{
	{field: "redis", set: func(q *capacityv1alpha1.Queue) bool { return q.Redis != nil }, resolve: resolveRedis},
	{field: "sqs", set: func(q *capacityv1alpha1.Queue) bool { return q.SQS != nil }, resolve: resolveSQS},
}

// Fields are the sources' field names under spec.queue, in registration order.
func Fields() []string {
	out := make([]string, len(kinds))
	for i, k := range kinds {
		out[i] = k.field
	}
	return out
}

// Resolve reads the settings of the one source spec sets, its credentials
// included. The API server already refuses a queue with no source or with two;
// Resolve refuses them too, for objects that bypassed it.
func Resolve(ctx context.Context, spec *capacityv1alpha1.Queue, creds Credentials) (Settings, error) {
	var set []kind
	for _, k := range kinds {
		if k.set(spec) {
			set = append(set, k)
		}
	}
	switch len(set) {
	case 0:
		return nil, fmt.Errorf("%w: set one queue source (queue.%s)", ErrInvalid, strings.Join(Fields(), " or queue."))
	case 1:
		s, err := set[0].resolve(ctx, spec, creds)
		if err != nil {
			return nil, fmt.Errorf("queue.%s: %w", set[0].field, err)
		}
		return s, nil
	default:
		names := make([]string, len(set))
		for i, k := range set {
			names[i] = "queue." + k.field
		}
		return nil, fmt.Errorf("%w: %s are all set; set one", ErrInvalid, strings.Join(names, " and "))
	}
}
