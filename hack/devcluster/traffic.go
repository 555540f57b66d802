package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/redis/go-redis/v9"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/claudecap/claudecap/internal/standin"
	"github.com/claudecap/claudecap/pkg/mockapi"
)

// The summarizer sample's workload, as the operator names it in the limiter's keys.
const (
	demoNamespace    = "default"
	demoDeployment   = "summarizer-workers"
	demoWorkload     = demoNamespace + "/summarizer"
	demoOrganization = "acme-prod"
	demoModel        = "claude-sonnet-4-5"
	// demoStartDelay is how long a Pod takes to become Ready on the local cluster.
	demoStartDelay = 5 * time.Second
	// demoMaxPods is the sample's replicas.max; every pod holds a Redis connection.
	demoMaxPods = 50
)

// demoTraffic stands in for what a cluster would run for the summarizer sample, since the
// local cluster's fake nodes run no containers: the Messages API (the mock, with tier-2
// limits and a latency of about 2 s per request, so one worker does about the declared 30
// per minute), and the containers of the summarizer Deployment's real Pods, played by
// internal/standin following those Pods. Each Pod gets its own sidecar proxy (in this
// process) when it appears, which draws from the organization's shared limiter under the
// Pod's name; once the Pod is Ready (5 s after it is created), its worker moves a job from
// the list to the processing list (the reliable queue pattern the sample declares), calls
// the API through its proxy with the official SDK, and acknowledges the job. When the Pod
// is deleted, its worker takes no new job and finishes the one in hand within the Pod's
// grace period (or requeues it when the period runs out). The controller-manager keeps
// the Deployment's status; the operator sees its Ready Pods there, and real per-pod usage,
// 429s and upstream headroom.
type demoTraffic struct {
	mockURL string
	server  *http.Server
	rdb     *redis.Client
	fleet   *standin.Fleet
}

// startDemoTraffic starts the mock and the workers of the summarizer's Pods; log receives
// their lifecycle as JSON lines.
func startDemoTraffic(ctx context.Context, kube client.Client, rdb *redis.Client, log io.Writer) (*demoTraffic, error) {
	mock, err := mockapi.New(mockapi.Config{
		Tier: "tier-2",
		Latency: mockapi.Latency{
			TimeToFirstToken: mockapi.Fixed(0.5),
			PerToken:         mockapi.Fixed(0.006),
		},
		OutputTokens: mockapi.Fixed(250),
		Seed:         1,
	})
	if err != nil {
		return nil, fmt.Errorf("starting the mock API: %w", err)
	}
	d := &demoTraffic{}
	if d.mockURL, err = d.serve(mock); err != nil {
		return nil, err
	}
	// The workers' own client: each Ready Pod's worker keeps a connection blocked in BLMOVE.
	opts := *rdb.Options()
	opts.PoolSize = demoMaxPods + 20
	d.rdb = redis.NewClient(&opts)
	d.fleet, err = standin.Start(ctx, standin.Config{
		Client:     kube,
		Namespace:  demoNamespace,
		Deployment: demoDeployment,
		Redis:      d.rdb,
		Sidecar:    standin.InProcessProxy(d.rdb, d.mockURL, demoOrganization, demoWorkload, 5*time.Second),
		FollowPods: true,
		// The sample declares 1,200-token prompts with 60% cache hits; these calls use no
		// cache, so they send the uncached 40%.
		Request: standin.Request{Model: demoModel, MaxTokens: 300, InputTokens: 480},
		APIKey:  "dev-key",
		Logger:  slog.New(slog.NewJSONHandler(log, nil)).With("logger", "standin"),
	})
	if err != nil {
		d.close()
		return nil, fmt.Errorf("starting the workers of the summarizer's Pods: %w", err)
	}
	return d, nil
}

// serve listens on a free loopback port and returns the server's URL.
func (d *demoTraffic) serve(h http.Handler) (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	d.server = &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = d.server.Serve(ln) }()
	return "http://" + ln.Addr().String(), nil
}

// close stops the workers (each finishes its call), then the mock, and prints what the
// workers did. The Pods stay.
func (d *demoTraffic) close() {
	if d.fleet != nil {
		d.fleet.Stop()
		st := d.fleet.Stats()
		fmt.Printf("dev: the summarizer's workers completed %d jobs (calls: %d ok, %d rate-limited, %d failed; "+
			"jobs requeued: %d, handed back: %d; queue errors: %d)\n",
			st.JobsCompleted, st.CallsOK, st.CallsRateLimited, st.CallsFailed, st.JobsRequeued, st.JobsHandedBack, st.QueueErrors)
	}
	if d.rdb != nil {
		_ = d.rdb.Close()
	}
	if d.server != nil {
		_ = d.server.Close()
	}
}
