// Package queue reads the live queue signals the controller scales on: how
// many jobs wait and how many workers hold right now, as a
// capacity.QueueSample, from whichever queue a ClaudeCapacity names.
//
// Every source implements [Source] (Poll, Close) and is registered in
// registry.go with its field under spec.queue; [Resolve] turns a spec.queue
// into the one source's [Settings] (credentials read through [Credentials],
// which only hands out Secrets labelled for the use), and Settings.Open builds
// the source. Sources:
//
//   - redis.go: a Redis list (backlog = LLEN; in flight = LLEN of the
//     processing list reliable-queue workers LMOVE jobs into) or a Redis
//     stream read by a consumer group (backlog = the group's lag from XINFO
//     GROUPS, or XLEN when Redis cannot say; in flight = the group's pending
//     entries; completions = entries-read minus pending). One MULTI/EXEC round
//     trip per poll, over a client leased from pkg/redispool.
//   - sqs.go: an Amazon SQS queue (backlog = ApproximateNumberOfMessages; in
//     flight = ApproximateNumberOfMessagesNotVisible), one GetQueueAttributes
//     call per poll with the AWS SDK for Go v2, https only except on loopback.
//
// Every poll runs under a deadline ([DefaultTimeout] by default) and every
// error wraps one kind (ErrUnavailable, ErrAuth, ...), names the queue and its
// server, and never holds a credential.
package queue
