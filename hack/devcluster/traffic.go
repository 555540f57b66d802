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
	// demoStartDelay is how long a summarizer pod takes to become Ready.
	demoStartDelay = 5 * time.Second
	// demoMaxPods is the sample's replicas.max; every pod holds a Redis connection.
	demoMaxPods = 50
)

// demoTraffic stands in for what a cluster would run for the summarizer sample, since the
// local control plane has no kubelet: the Messages API (the mock, with tier-2 limits and a
// latency of about 2 s per request, so one worker does about the declared 30 per minute),
// and the pods of the summarizer Deployment, played by internal/standin. There is one pod
// per replica; it is Ready 5 s after it is created, and has its own sidecar proxy (in this
// process) that draws from the organization's shared limiter under the pod's name. Each
// Ready pod's worker moves a job from the list to the processing list (the reliable queue
// pattern the sample declares), calls the API through its proxy with the official SDK, and
// acknowledges the job. The operator then sees the ready replicas in the Deployment's
// status, real per-pod usage, 429s and upstream headroom.
type demoTraffic struct {
	mockURL string
	server  *http.Server
	rdb     *redis.Client
	fleet   *standin.Fleet
}

// startDemoTraffic starts the mock and the summarizer's pods; log receives the pods'
// lifecycle as JSON lines.
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
	// The pods' own client: each Ready pod keeps a connection blocked in BLMOVE.
	opts := *rdb.Options()
	opts.PoolSize = demoMaxPods + 20
	d.rdb = redis.NewClient(&opts)
	d.fleet, err = standin.Start(ctx, standin.Config{
		Client:     kube,
		Namespace:  demoNamespace,
		Deployment: demoDeployment,
		Redis:      d.rdb,
		Sidecar:    standin.InProcessProxy(d.rdb, d.mockURL, demoOrganization, demoWorkload, 5*time.Second),
		StartDelay: demoStartDelay,
		// The sample declares 1,200-token prompts with 60% cache hits; these calls use no
		// cache, so they send the uncached 40%.
		Request: standin.Request{Model: demoModel, MaxTokens: 300, InputTokens: 480},
		APIKey:  "dev-key",
		Logger:  slog.New(slog.NewJSONHandler(log, nil)).With("logger", "standin"),
	})
	if err != nil {
		d.close()
		return nil, fmt.Errorf("starting the summarizer's pods: %w", err)
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

// close stops the pods (each finishes its call), then the mock.
func (d *demoTraffic) close() {
	if d.fleet != nil {
		d.fleet.Stop()
	}
	if d.rdb != nil {
		_ = d.rdb.Close()
	}
	if d.server != nil {
		_ = d.server.Close()
	}
}
