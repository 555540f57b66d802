package cli

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/spf13/cobra"

	"github.com/claudecap/claudecap/pkg/capacity"
	"github.com/claudecap/claudecap/pkg/proxy"
	"github.com/claudecap/claudecap/pkg/ratelimit"
)

// proxyOptions are the flags of `claudecap proxy`.
type proxyOptions struct {
	listen          string
	opsListen       string
	upstream        string
	organization    string
	workload        string
	pod             string
	class           string
	catalog         string
	apiKeyFile      string
	apiKeyEnv       string
	maxWait         time.Duration
	coalesce        bool
	maxBodyBytes    int64
	headerTimeout   time.Duration
	requestTimeout  time.Duration
	streamIdle      time.Duration
	lease           time.Duration
	onUnavailable   string
	publishInterval time.Duration
	redisAddr       string
	redisCluster    bool
	redisUser       string
	redisPassEnv    string
	redisDB         int
	redisTLS        bool
	logLevel        string
	allowedHosts    []string
	allowedOrigins  []string
	allowPrefixes   []string
	timeouts        serverTimeouts
}

func newProxyCommand() *cobra.Command { return proxyCommand(&proxyOptions{}) }

// proxyCommand builds the command around o, which its flags fill.
func proxyCommand(o *proxyOptions) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "proxy",
		Short: "Run the rate-limit-aware sidecar every worker call goes through",
		Long: `Run a reverse proxy for the Messages API that admits every call through the
shared limiter before forwarding it. Workers in any language set
ANTHROPIC_BASE_URL=http://127.0.0.1:8081 and keep their SDK.

Each POST /v1/messages reserves its estimated cost (requests, input tokens
estimated as ceil(body bytes / 3), output = max_tokens) from the pool of the
model's class in Redis, goes to the fixed upstream, and is settled with the
usage in the response. When the pool has no room the proxy answers 429
rate_limit_error with retry-after (and x-claudecap-limited), or waits up to
--wait. Upstream anthropic-ratelimit-* headers and 429/529 counts are published
to the pool state the controller reads.

Only requests naming a loopback Host (or an --allowed-host) and carrying no
Origin header (or an --allowed-origin) are served, on plain /v1/ paths. With an
injected key only POST /v1/messages, POST /v1/messages/count_tokens, GET
/v1/models and GET /v1/models/{id} are served, plus any --allow-path-prefix.

/healthz, /readyz and /metrics are served on --ops-listen (which checks no
Host: probes use the pod IP) and on --listen. /readyz is 200 once Redis
answers and the pool calls draw from is configured by the controller.

Examples:
  claudecap proxy --organization acme-prod --workload ai/summarizer --redis-addr redis:6379
  claudecap proxy --workload ai/classifier --redis-addr redis:6379     # a private pool
  claudecap proxy --organization acme-prod --workload ai/summarizer --api-key-file /var/run/secrets/anthropic/key --wait 30s
  claudecap proxy --organization dev --workload dev/local --upstream http://127.0.0.1:8080 --class sonnet-4`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := o.config(os.Getenv)
			if err != nil {
				return err
			}
			rdb, lim, err := o.limiter(os.Getenv)
			if err != nil {
				return err
			}
			defer func() { _ = rdb.Close() }()
			cfg.Logger = o.logger(cmd.ErrOrStderr())
			return runProxy(cmd.Context(), cmd.OutOrStdout(), o, cfg, lim)
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.listen, "listen", proxy.DefaultListenAddr, "address workers reach the proxy on (keep it on loopback when injecting a key)")
	f.StringVar(&o.opsListen, "ops-listen", proxy.DefaultOpsListenAddr, `address of /metrics, /healthz and /readyz ("" to serve them on --listen only)`)
	f.StringVar(&o.upstream, "upstream", proxy.DefaultUpstream, "the API every call is forwarded to")
	f.StringVar(&o.organization, "organization", "",
		"the ClaudeOrganization whose pools the calls draw on (spec.organizationRef.name); empty: the workload's private pool (spec.limits)")
	f.StringVar(&o.workload, "workload", "",
		"workload (<namespace>/<name> of the ClaudeCapacity) whose usage is recorded and whose allocation local-share splits; required")
	f.StringVar(&o.pod, "pod", "", "this pod's name among the workload's active pods (default: host name)")
	f.StringVar(&o.class, "class", "", "pin every call to this model class's pool (default: the class of the request's model)")
	f.StringVar(&o.catalog, "catalog", "", "model catalog file layered on the built-in one")
	f.StringVar(&o.apiKeyFile, "api-key-file", "", "inject the API key read from this file, replacing the worker's")
	f.StringVar(&o.apiKeyEnv, "api-key-env", "", "inject the API key held in this environment variable, replacing the worker's")
	f.DurationVar(&o.maxWait, "wait", 0, "how long a call may wait for room in the pool (0: answer 429 at once)")
	f.BoolVar(&o.coalesce, "coalesce", false, "let identical in-flight non-streaming calls share one upstream call")
	f.Int64Var(&o.maxBodyBytes, "max-body-bytes", proxy.DefaultMaxBodyBytes, "largest request body accepted (413 above)")
	f.DurationVar(&o.headerTimeout, "upstream-header-timeout", proxy.DefaultUpstreamHeaderTimeout, "longest wait for the upstream's response headers")
	f.DurationVar(&o.requestTimeout, "request-timeout", proxy.DefaultRequestTimeout, "longest upstream call, streams included")
	f.DurationVar(&o.streamIdle, "stream-idle-timeout", proxy.DefaultStreamIdleTimeout, "end a stream that sent nothing for this long")
	f.DurationVar(&o.lease, "lease", ratelimit.DefaultLease, "how long a reservation may stay unsettled (longer calls stay charged in full)")
	f.StringVar(&o.onUnavailable, "on-redis-unavailable", "fail-closed", `"fail-closed" (refuse calls) or "local-share" (enforce this pod's share in memory)`)
	f.DurationVar(&o.publishInterval, "publish-interval", proxy.DefaultPublishInterval, "publish upstream rate-limit headers at most this often per class")
	f.StringVar(&o.redisAddr, "redis-addr", "127.0.0.1:6379", "Redis holding the pools' state (with --redis-cluster: seed nodes, comma-separated)")
	f.BoolVar(&o.redisCluster, "redis-cluster", false, "Redis is a Redis Cluster (docs/redis-cluster.md): follow MOVED/ASK and reload the topology every second")
	f.StringVar(&o.redisUser, "redis-username", "", "Redis ACL user name")
	f.StringVar(&o.redisPassEnv, "redis-password-env", "REDIS_PASSWORD", "environment variable holding the Redis password")
	f.IntVar(&o.redisDB, "redis-db", 0, "Redis database number")
	f.BoolVar(&o.redisTLS, "redis-tls", false, "connect to Redis over TLS")
	f.StringVar(&o.logLevel, "log-level", "info", `"debug" (one line per call), "info", "warn" or "error"`)
	f.StringSliceVar(&o.allowPrefixes, "allow-path-prefix", nil,
		"with an injected key, also serve this path prefix and the paths below it, any method, unmetered "+
			"(e.g. /v1/messages/batches; repeatable or comma-separated). "+
			"Without it an injected key serves only POST /v1/messages, POST /v1/messages/count_tokens, GET /v1/models and GET /v1/models/{id}")
	f.StringSliceVar(&o.allowedHosts, "allowed-host", nil,
		"also answer requests whose Host is this name or IP, any port "+
			"(default: loopback names and addresses only, which stops DNS rebinding; repeatable or comma-separated)")
	f.StringSliceVar(&o.allowedOrigins, "allowed-origin", nil,
		"serve browser requests from this origin (scheme://host[:port]; repeatable or comma-separated); requests with any other Origin header get 403")
	o.timeouts.addFlags(f)
	return cmd
}

// config turns flags into a proxy configuration; getenv reads the
// environment (a parameter so tests need not touch the process's).
func (o *proxyOptions) config(getenv func(string) string) (proxy.Config, error) {
	cfg := proxy.Config{
		Upstream:              o.upstream,
		Class:                 o.class,
		MaxWait:               o.maxWait,
		Coalesce:              o.coalesce,
		MaxBodyBytes:          o.maxBodyBytes,
		UpstreamHeaderTimeout: o.headerTimeout,
		RequestTimeout:        o.requestTimeout,
		StreamIdleTimeout:     o.streamIdle,
		PublishInterval:       o.publishInterval,
		AllowedPathPrefixes:   o.allowPrefixes,
		AllowedHosts:          o.allowedHosts,
		AllowedOrigins:        o.allowedOrigins,
	}
	// Without a workload the local-share policy gives every pod the whole
	// pool while Redis is down, and the controller counts the pool's own
	// traffic as usage by others.
	if o.workload == "" {
		return cfg, errors.New("--workload is required: name the ClaudeCapacity as <namespace>/<name>, " +
			"so that usage is recorded for it and each pod's local share is its part of the workload's allocation")
	}
	if err := ratelimit.ValidateWorkload(o.workload); err != nil {
		return cfg, fmt.Errorf("--workload: %w", err)
	}
	if o.organization == "" {
		// A private pool: the ClaudeCapacity's own limits, keyed by its namespace and name
		// (its status.pool).
		ns, name, ok := strings.Cut(o.workload, "/")
		if !ok || ns == "" || name == "" || strings.Contains(name, "/") {
			return cfg, fmt.Errorf("--workload %q: want <namespace>/<name> of the ClaudeCapacity", o.workload)
		}
		o.organization = ns + "." + name
	}
	if o.maxWait < 0 || o.maxBodyBytes <= 0 {
		return cfg, errors.New("--wait must not be negative and --max-body-bytes must be positive")
	}
	if err := o.timeouts.validate(); err != nil {
		return cfg, err
	}
	if _, err := o.level(); err != nil {
		return cfg, err
	}
	if o.publishInterval <= 0 {
		cfg.PublishInterval = -1 // every response
	}
	key, err := readAPIKey(o.apiKeyFile, o.apiKeyEnv, getenv)
	if err != nil {
		return cfg, err
	}
	cfg.APIKey = key
	if o.catalog != "" {
		if cfg.Catalog, err = capacity.LoadCatalog(o.catalog); err != nil {
			return cfg, err
		}
	}
	return cfg, nil
}

// readAPIKey reads the key to inject, if any. Errors name the source, never
// the content.
func readAPIKey(file, env string, getenv func(string) string) (proxy.APIKey, error) {
	switch {
	case file != "" && env != "":
		return "", errors.New("--api-key-file and --api-key-env are exclusive")
	case file != "":
		raw, err := os.ReadFile(file) //nolint:gosec // G304: the operator names the key file.
		if err != nil {
			return "", fmt.Errorf("reading the API key file: %w", err)
		}
		key := strings.TrimSpace(string(raw))
		if key == "" || strings.ContainsAny(key, "\r\n") {
			return "", fmt.Errorf("API key file %s must hold one non-empty line", file)
		}
		return proxy.APIKey(key), nil
	case env != "":
		key := strings.TrimSpace(getenv(env))
		if key == "" {
			return "", fmt.Errorf("environment variable %s holds no API key", env)
		}
		return proxy.APIKey(key), nil
	}
	return "", nil
}

// limiter connects to Redis and builds the shared limiter.
func (o *proxyOptions) limiter(getenv func(string) string) (redis.UniversalClient, proxy.Limiter, error) {
	policy := ratelimit.FailClosed
	switch o.onUnavailable {
	case "fail-closed":
	case "local-share":
		policy = ratelimit.LocalShare
	default:
		return nil, nil, fmt.Errorf("--on-redis-unavailable %q: want fail-closed or local-share", o.onUnavailable)
	}
	rdb, err := o.redisClient(getenv)
	if err != nil {
		return nil, nil, err
	}
	lim, err := proxy.NewRedisLimiter(rdb, ratelimit.Options{
		// The class, when pinned, is the pool /readyz checks.
		Pool:          ratelimit.PoolKey{Organization: o.organization, Class: o.class},
		Workload:      o.workload,
		Pod:           o.pod,
		Lease:         o.lease,
		OnUnavailable: policy,
	})
	if err != nil {
		_ = rdb.Close()
		return nil, nil, err
	}
	return rdb, lim, nil
}

// clusterReload is how often a cluster client reloads the topology: go-redis's
// default of a minute kept pods failing on a dead master's pools for the whole
// minute after a failover (docs/redis-cluster.md).
const clusterReload = time.Second

// redisClient builds the client of the pools' Redis: one server, or a cluster.
func (o *proxyOptions) redisClient(getenv func(string) string) (redis.UniversalClient, error) {
	var password string
	if o.redisPassEnv != "" {
		password = getenv(o.redisPassEnv)
	}
	var tlsConfig *tls.Config
	if o.redisTLS {
		tlsConfig = &tls.Config{MinVersion: tls.VersionTLS12}
	}
	if !o.redisCluster {
		return redis.NewClient(&redis.Options{Addr: o.redisAddr, Username: o.redisUser, Password: password,
			DB: o.redisDB, TLSConfig: tlsConfig}), nil
	}
	if o.redisDB != 0 {
		return nil, fmt.Errorf("--redis-db %d: a Redis Cluster has only database 0", o.redisDB)
	}
	var seeds []string
	for _, a := range strings.Split(o.redisAddr, ",") {
		if a = strings.TrimSpace(a); a != "" {
			seeds = append(seeds, a)
		}
	}
	if len(seeds) == 0 {
		return nil, errors.New("--redis-addr: name at least one node of the cluster")
	}
	return redis.NewClusterClient(&redis.ClusterOptions{Addrs: seeds, Username: o.redisUser, Password: password,
		TLSConfig: tlsConfig, ClusterStateReloadInterval: clusterReload}), nil
}

func (o *proxyOptions) level() (slog.Level, error) {
	var level slog.Level
	if err := level.UnmarshalText([]byte(o.logLevel)); err != nil {
		return level, fmt.Errorf("--log-level %q: want debug, info, warn or error", o.logLevel)
	}
	return level, nil
}

// logger writes JSON lines; config has validated the level.
func (o *proxyOptions) logger(w io.Writer) *slog.Logger {
	level, _ := o.level()
	return slog.New(slog.NewJSONHandler(w, &slog.HandlerOptions{Level: level}))
}

// runProxy serves the proxy until ctx ends, then stops accepting, lets
// in-flight calls finish and drains settlements.
func runProxy(ctx context.Context, out io.Writer, o *proxyOptions, cfg proxy.Config, lim proxy.Limiter) error {
	p, err := proxy.New(cfg, lim)
	if err != nil {
		return err
	}
	servers := []*http.Server{o.timeouts.server(p.Handler())}
	listeners := []net.Listener{}
	addrs := []string{o.listen}
	if o.opsListen != "" {
		servers = append(servers, o.timeouts.server(p.OpsHandler()))
		addrs = append(addrs, o.opsListen)
	}
	for _, a := range addrs {
		ln, err := net.Listen("tcp", a)
		if err != nil {
			for _, l := range listeners {
				_ = l.Close()
			}
			return fmt.Errorf("listening on %s: %w", a, err)
		}
		listeners = append(listeners, ln)
	}
	injected := "passing the worker's API key through"
	if cfg.APIKey != "" {
		injected = "injecting the configured API key"
	}
	_, _ = fmt.Fprintf(out, "claudecap proxy listening on http://%s, forwarding to %s, %s\n", listeners[0].Addr(), cfg.Upstream, injected)
	if len(listeners) > 1 {
		_, _ = fmt.Fprintf(out, "claudecap proxy ops endpoints on http://%s (/metrics, /healthz, /readyz)\n", listeners[1].Addr())
	}
	errc := make(chan error, len(servers))
	for i, s := range servers {
		go func() { errc <- s.Serve(listeners[i]) }()
	}
	select {
	case err = <-errc:
		err = fmt.Errorf("serving the proxy: %w", err)
	case <-ctx.Done():
	}
	shutdown, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for _, s := range servers {
		_ = s.Shutdown(shutdown)
	}
	return errors.Join(err, p.Close(shutdown))
}
