package redispool

import (
	"crypto/sha256"
	"fmt"
	"net"
	"strconv"
)

// Connection says how to reach one Redis server. It mirrors the API's
// RedisConnection with the password already read from its Secret.
//
// Its String and GoString leave the password out, so printing a Connection
// with any fmt verb is safe.
type Connection struct {
	// Address is host:port of the server.
	Address string
	// Password authenticates as the default user; empty for none.
	Password string
	// TLS turns on TLS to the server.
	TLS bool
	// Database is the database index (SELECT).
	Database int
}

// String names the server without the password, e.g. "redis:6379 db 2 (tls)".
func (c Connection) String() string {
	s := c.Address + " db " + strconv.Itoa(c.Database)
	if c.TLS {
		s += " (tls)"
	}
	if c.Password != "" {
		s += " (password set)"
	}
	return s
}

// GoString keeps %#v from printing the password.
func (c Connection) GoString() string {
	return fmt.Sprintf("redispool.Connection{%s}", c.String())
}

// validate refuses settings no server could accept before a client is built
// for them.
func (c Connection) validate() error {
	host, port, err := net.SplitHostPort(c.Address)
	if err != nil {
		return fmt.Errorf("redis address %q is not host:port: %w", c.Address, err)
	}
	if host == "" {
		return fmt.Errorf("redis address %q has no host", c.Address)
	}
	if p, err := strconv.Atoi(port); err != nil || p < 1 || p > 65535 {
		return fmt.Errorf("redis address %q has no valid port", c.Address)
	}
	if c.Database < 0 {
		return fmt.Errorf("redis database index %d is negative", c.Database)
	}
	return nil
}

// clientKey identifies the settings that may share one client. The password is
// kept only as a hash, so the pool's map can be inspected without exposing it,
// and a rotated password yields a new client instead of reusing a stale one.
type clientKey struct {
	address  string
	database int
	tls      bool
	password [sha256.Size]byte
}

func (c Connection) key() clientKey {
	return clientKey{
		address:  c.Address,
		database: c.Database,
		tls:      c.TLS,
		password: sha256.Sum256([]byte(c.Password)),
	}
}
