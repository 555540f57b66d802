package standin

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// takeBlock bounds each blocking read, so an idle worker notices within a second that
// its pod is terminating. Go-redis rounds blocking list timeouts to whole seconds.
const takeBlock = time.Second

// job is one unit of work taken from the queue.
type job struct {
	// payload identifies the job in Fleet.Acked.
	payload string
	// id and fields are the stream entry's; empty for lists.
	id     string
	fields map[string]any
}

// queue is the reliable queue a worker takes jobs from. take moves a job into the
// worker's custody (the processing list, the consumer's pending entries); ack ends the
// custody, reporting whether the job was still there; requeue puts the job back where
// every worker can take it, atomically, so a job is never both queued and in custody.
type queue interface {
	take(ctx context.Context, consumer string) (job, bool, error)
	ack(ctx context.Context, j job) (bool, error)
	requeue(ctx context.Context, j job) (bool, error)
}

func newQueue(ctx context.Context, rdb redis.UniversalClient, q Queue) (queue, error) {
	if q.Stream == "" {
		return listQueue{rdb: rdb, list: q.List, processing: q.ProcessingList}, nil
	}
	err := rdb.XGroupCreateMkStream(ctx, q.Stream, q.Group, "0").Err()
	if err != nil && !strings.HasPrefix(err.Error(), "BUSYGROUP") {
		return nil, fmt.Errorf("creating consumer group %s of stream %s: %w", q.Group, q.Stream, err)
	}
	return streamQueue{rdb: rdb, stream: q.Stream, group: q.Group, field: q.Field}, nil
}

// listQueue is a list with a processing list.
type listQueue struct {
	rdb              redis.UniversalClient
	list, processing string
}

func (q listQueue) take(ctx context.Context, _ string) (job, bool, error) {
	payload, err := q.rdb.BLMove(ctx, q.list, q.processing, "LEFT", "RIGHT", takeBlock).Result()
	switch {
	case errors.Is(err, redis.Nil):
		return job{}, false, nil
	case err != nil:
		return job{}, false, fmt.Errorf("taking a job from %s: %w", q.list, err)
	}
	return job{payload: payload}, true, nil
}

func (q listQueue) ack(ctx context.Context, j job) (bool, error) {
	n, err := q.rdb.LRem(ctx, q.processing, 1, j.payload).Result()
	if err != nil {
		return false, fmt.Errorf("acknowledging a job in %s: %w", q.processing, err)
	}
	return n == 1, nil
}

// requeueListScript moves one job from the processing list back to the head of the queue,
// where it is taken next, and only if it is still in the processing list.
var requeueListScript = redis.NewScript(`
if redis.call('LREM', KEYS[2], 1, ARGV[1]) == 1 then
  redis.call('LPUSH', KEYS[1], ARGV[1])
  return 1
end
return 0`)

func (q listQueue) requeue(ctx context.Context, j job) (bool, error) {
	n, err := requeueListScript.Run(ctx, q.rdb, []string{q.list, q.processing}, j.payload).Int()
	if err != nil {
		return false, fmt.Errorf("requeueing a job from %s to %s: %w", q.processing, q.list, err)
	}
	return n == 1, nil
}

// streamQueue is a stream read through a consumer group.
type streamQueue struct {
	rdb                  redis.UniversalClient
	stream, group, field string
}

func (q streamQueue) take(ctx context.Context, consumer string) (job, bool, error) {
	res, err := q.rdb.XReadGroup(ctx, &redis.XReadGroupArgs{
		Group: q.group, Consumer: consumer, Streams: []string{q.stream, ">"}, Count: 1, Block: takeBlock,
	}).Result()
	switch {
	case errors.Is(err, redis.Nil):
		return job{}, false, nil
	case err != nil:
		return job{}, false, fmt.Errorf("reading a job from stream %s: %w", q.stream, err)
	case len(res) == 0 || len(res[0].Messages) == 0:
		return job{}, false, nil
	}
	msg := res[0].Messages[0]
	payload, ok := msg.Values[q.field].(string)
	if !ok {
		payload = msg.ID
	}
	return job{payload: payload, id: msg.ID, fields: msg.Values}, true, nil
}

func (q streamQueue) ack(ctx context.Context, j job) (bool, error) {
	n, err := q.rdb.XAck(ctx, q.stream, q.group, j.id).Result()
	if err != nil {
		return false, fmt.Errorf("acknowledging entry %s of stream %s: %w", j.id, q.stream, err)
	}
	return n == 1, nil
}

// requeueStreamScript acknowledges the entry and adds it again as a new entry, in one
// step and only while the entry is pending, so another consumer can take it: a consumer
// name is never reused, and a pending entry of an exited pod would otherwise wait forever.
var requeueStreamScript = redis.NewScript(`
if redis.call('XACK', KEYS[1], ARGV[1], ARGV[2]) == 1 then
  redis.call('XADD', KEYS[1], '*', unpack(ARGV, 3))
  return 1
end
return 0`)

func (q streamQueue) requeue(ctx context.Context, j job) (bool, error) {
	args := []any{q.group, j.id}
	keys := make([]string, 0, len(j.fields))
	for k := range j.fields {
		keys = append(keys, k)
	}
	sort.Strings(keys) // map order is random; the same job should read the same each time
	for _, k := range keys {
		args = append(args, k, j.fields[k])
	}
	if len(keys) == 0 {
		args = append(args, q.field, j.payload) // XADD needs a field
	}
	n, err := requeueStreamScript.Run(ctx, q.rdb, []string{q.stream}, args...).Int()
	if err != nil {
		return false, fmt.Errorf("requeueing entry %s of stream %s: %w", j.id, q.stream, err)
	}
	return n == 1, nil
}
