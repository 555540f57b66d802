package redispool

import (
	"crypto/tls"
	"errors"
	"net"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
)

// Defaults of Options.
const (
	// DefaultPoolSize is the connections per Redis server. A poll holds a
	// connection for one round trip (well under a millisecond on a LAN), so a
	// handful serves hundreds of ClaudeCapacities polled every few seconds.
	DefaultPoolSize = 4
	// DefaultTimeout bounds every dial, read, write and poll. A queue signal
	// older than the poll interval is worth little; waiting longer only delays
	// the reconcile that holds replicas on missing data.
	DefaultTimeout = time.Second
	// DefaultIdleTimeout is how long a client nobody leases stays open, so a
	// ClaudeCapacity that is recreated, or edited to the same server, does not
	// pay for new connections.
	DefaultIdleTimeout = time.Minute
)

// ErrPoolClosed is returned by Acquire after Close.
var ErrPoolClosed = errors.New("redis client pool is closed")

// Options tunes the clients a Pool builds. Zero values take the defaults.
type Options struct {
	// PoolSize is the number of connections per server (DefaultPoolSize).
	PoolSize int
	// Timeout bounds dial, read and write on each connection (DefaultTimeout).
	Timeout time.Duration
	// IdleTimeout is how long a client without leases stays open
	// (DefaultIdleTimeout).
	IdleTimeout time.Duration
	// TLSConfig is the base for TLS connections, for example to trust a
	// private CA; nil trusts the system roots. It is cloned, and ServerName is
	// filled in from the address when empty.
	TLSConfig *tls.Config
}

func (o Options) withDefaults() Options {
	if o.PoolSize <= 0 {
		o.PoolSize = DefaultPoolSize
	}
	if o.Timeout <= 0 {
		o.Timeout = DefaultTimeout
	}
	if o.IdleTimeout <= 0 {
		o.IdleTimeout = DefaultIdleTimeout
	}
	return o
}

// Pool shares one *redis.Client between all users of the same server,
// database, TLS setting and password (queue sources, limiter connections), counting leases and closing a client
// once it has been unleased for IdleTimeout. It is safe for concurrent use.
type Pool struct {
	opts Options

	mu      sync.Mutex
	clients map[clientKey]*sharedClient
	closed  bool
}

type sharedClient struct {
	client *redis.Client
	leases int
	idle   *time.Timer
}

// New returns an empty pool.
func New(opts Options) *Pool {
	return &Pool{opts: opts.withDefaults(), clients: map[clientKey]*sharedClient{}}
}

// Lease is one user's hold on a shared client. Release it when done.
type Lease struct {
	pool   *Pool
	key    clientKey
	shared *sharedClient
	once   sync.Once
}

// Client is the shared client. Do not Close it; Release the lease instead.
func (l *Lease) Client() *redis.Client {
	return l.shared.client
}

// Release gives the lease back. It is idempotent.
func (l *Lease) Release() {
	l.once.Do(func() { l.pool.release(l.key, l.shared) })
}

// Acquire returns a lease on the client for conn, building the client on
// first use. Building does not dial: connections open on the first command.
func (p *Pool) Acquire(conn Connection) (*Lease, error) {
	if err := conn.validate(); err != nil {
		return nil, err
	}
	key := conn.key()
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return nil, ErrPoolClosed
	}
	shared, ok := p.clients[key]
	if !ok {
		shared = &sharedClient{client: redis.NewClient(p.clientOptions(conn))}
		p.clients[key] = shared
	}
	if shared.idle != nil {
		// If the timer already fired, evict waits for p.mu and then sees the
		// new lease, so the client stays open.
		shared.idle.Stop()
		shared.idle = nil
	}
	shared.leases++
	return &Lease{pool: p, key: key, shared: shared}, nil
}

func (p *Pool) release(key clientKey, shared *sharedClient) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed || p.clients[key] != shared {
		return
	}
	shared.leases--
	if shared.leases > 0 {
		return
	}
	shared.idle = time.AfterFunc(p.opts.IdleTimeout, func() { p.evict(key, shared) })
}

func (p *Pool) evict(key clientKey, shared *sharedClient) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed || p.clients[key] != shared || shared.leases > 0 {
		return
	}
	delete(p.clients, key)
	_ = shared.client.Close() // Nothing uses it; a close error changes nothing.
}

// Clients is the number of open clients (one per distinct server settings).
func (p *Pool) Clients() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.clients)
}

// Close closes every client, leased or not; later commands on them fail and
// later Acquires return ErrPoolClosed.
func (p *Pool) Close() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return nil
	}
	p.closed = true
	var errs []error
	for key, shared := range p.clients {
		if shared.idle != nil {
			shared.idle.Stop()
		}
		errs = append(errs, shared.client.Close())
		delete(p.clients, key)
	}
	return errors.Join(errs...)
}

func (p *Pool) clientOptions(conn Connection) *redis.Options {
	opts := &redis.Options{
		Addr:         conn.Address,
		Password:     conn.Password,
		DB:           conn.Database,
		PoolSize:     p.opts.PoolSize,
		DialTimeout:  p.opts.Timeout,
		ReadTimeout:  p.opts.Timeout,
		WriteTimeout: p.opts.Timeout,
		PoolTimeout:  p.opts.Timeout,
		// Let each poll's deadline reach the socket, so a paused server costs a
		// poll its timeout and no more.
		ContextTimeoutEnabled: true,
		// One retry covers a connection that died with a restarted server;
		// more would only stretch a failing poll toward its deadline.
		MaxRetries: 1,
		// Failing fast on a refused dial is better than backing off inside a
		// one-second budget; the next poll dials again.
		DialerRetries: 1,
		// Connections idle between polls are recycled before a NAT or
		// load balancer silently drops them.
		ConnMaxIdleTime: 5 * time.Minute,
	}
	if conn.TLS {
		cfg := &tls.Config{MinVersion: tls.VersionTLS12}
		if p.opts.TLSConfig != nil {
			cfg = p.opts.TLSConfig.Clone()
			if cfg.MinVersion == 0 {
				cfg.MinVersion = tls.VersionTLS12
			}
		}
		if cfg.ServerName == "" {
			if host, _, err := net.SplitHostPort(conn.Address); err == nil {
				cfg.ServerName = host
			}
		}
		opts.TLSConfig = cfg
	}
	return opts
}
