package standin

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/claudecap/claudecap/pkg/proxy"
	"github.com/claudecap/claudecap/pkg/ratelimit"
)

// sidecarStopTimeout bounds a sidecar's shutdown, which drains its pending settlements.
const sidecarStopTimeout = 5 * time.Second

// InProcessProxy returns a SidecarFunc that gives every pod its own claudecap proxy
// (pkg/proxy) in this process, on a free loopback port, drawing from the organization's
// shared limiter in rdb and recording usage for workload under the pod's name, as the
// proxy sidecar of a real pod does. upstream is the Messages API (usually pkg/mockapi);
// maxWait is how long a call may wait for room in the pool before it is answered 429.
// The proxy passes each worker's x-api-key through and logs nothing.
func InProcessProxy(rdb redis.UniversalClient, upstream, organization, workload string, maxWait time.Duration) SidecarFunc {
	quiet := slog.New(slog.DiscardHandler)
	return func(ctx context.Context, pod string) (string, func(), error) {
		limiter, err := proxy.NewRedisLimiter(rdb, ratelimit.Options{
			Pool:     ratelimit.PoolKey{Organization: organization},
			Workload: workload,
			Pod:      pod,
		})
		if err != nil {
			return "", nil, fmt.Errorf("sidecar of %s: %w", pod, err)
		}
		px, err := proxy.New(proxy.Config{Upstream: upstream, MaxWait: maxWait, Logger: quiet}, limiter)
		if err != nil {
			return "", nil, fmt.Errorf("sidecar of %s: %w", pod, err)
		}
		ln, err := (&net.ListenConfig{}).Listen(ctx, "tcp", "127.0.0.1:0")
		if err != nil {
			return "", nil, fmt.Errorf("sidecar of %s: listening on loopback: %w", pod, err)
		}
		srv := &http.Server{Handler: px.Handler(), ReadHeaderTimeout: 10 * time.Second}
		go func() { _ = srv.Serve(ln) }() // ends with Shutdown
		stop := sync.OnceFunc(func() {
			sctx, cancel := context.WithTimeout(context.Background(), sidecarStopTimeout)
			defer cancel()
			_ = srv.Shutdown(sctx)
			_ = px.Close(sctx)
		})
		// Like a container, the sidecar does not outlive its pod.
		context.AfterFunc(ctx, stop)
		return "http://" + ln.Addr().String(), stop, nil
	}
}
