// Package signals reads the live signals the controller scales on from Redis:
// how many jobs wait in a queue and how many workers hold right now.
//
// The controller polls every ClaudeCapacity every few seconds, and one manager
// may watch hundreds of them, so a poll must be cheap for Redis and must never
// hang a reconcile: each [Reader.Poll] sends all of its commands in ONE
// MULTI/EXEC round trip (which also makes the counts a consistent snapshot: a
// job moved from the list into the processing list is never counted twice or
// missed), under a deadline (one second by default). Readers of the same Redis
// share one small connection pool through [Pool], keyed by address, database,
// TLS and a hash of the password.
//
// Two queue shapes are understood, the ones workers actually use:
//
//   - a Redis list of jobs: backlog = LLEN list; in flight = LLEN of the
//     processing list that reliable-queue workers LMOVE jobs into;
//   - a Redis stream read by a consumer group: backlog = the group's lag from
//     XINFO GROUPS (Redis 7+), or XLEN when Redis cannot say (entries deleted
//     past the group's position, an arbitrary SETID, Redis 6); in flight = the
//     group's pending entries (XPENDING summary). Streams also yield a
//     completion counter, entries-read minus pending, which together with
//     backlog and in-flight lets the arrival estimator in pkg/capacity count
//     every job that arrived.
//
// The password reaches this package already resolved from its Secret (the
// controller does the Kubernetes side) and never appears in an error, a log
// line or a formatted [Connection].
package signals
