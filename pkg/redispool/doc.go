// Package redispool shares Redis clients between everything the operator
// connects to the same server with: queue sources (pkg/queue) and the limiter
// connections of the controllers.
//
// The controller polls every ClaudeCapacity every few seconds, and one manager
// may watch hundreds of them, so connections must be few and reused: [Pool]
// hands out leases on one client per server settings (address, database, TLS
// and a hash of the password), closes a client once nobody has leased it for a
// while, and bounds every dial, read and write ([DefaultTimeout]), so a paused
// server costs a caller its deadline and never hangs it.
//
// The password reaches this package already resolved from its Secret (the
// controller does the Kubernetes side) and never appears in an error, a log
// line or a formatted [Connection].
package redispool
