package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/anthropics/anthropic-sdk-go/v2"
	"github.com/anthropics/anthropic-sdk-go/v2/option"
	"github.com/redis/go-redis/v9"
	appsv1 "k8s.io/api/apps/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/claudecap/claudecap/pkg/mockapi"
	"github.com/claudecap/claudecap/pkg/proxy"
	"github.com/claudecap/claudecap/pkg/ratelimit"
)

// The summarizer sample's workload, as the operator names it in the limiter's keys.
const (
	demoNamespace  = "default"
	demoDeployment = "summarizer-workers"
	demoWorkload   = demoNamespace + "/summarizer"
	demoModel      = "claude-sonnet-4-5"
)

// demoTraffic stands in for what a cluster would run for the summarizer sample, since the
// local control plane has no kubelet: the Messages API (the mock, with tier-2 limits and a
// latency of about 2 s per request, so one worker does about the declared 30 per minute),
// the workers' sidecar proxy, and one worker goroutine per replica of the summarizer
// Deployment. Each worker moves a job from the list to the processing list (the reliable
// queue pattern the sample declares), calls the API through the proxy with the official
// SDK, and acknowledges the job. The operator then sees real usage, 429s and upstream
// headroom, and the Deployment's replicas it sets decide how many workers run.
type demoTraffic struct {
	mockURL, proxyURL string
	servers           []*http.Server
	stop              context.CancelFunc
	wg                sync.WaitGroup
}

func startDemoTraffic(ctx context.Context, kube client.Client, rdb *redis.Client) (*demoTraffic, error) {
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
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
	limiter, err := proxy.NewRedisLimiter(rdb, ratelimit.Options{
		Pool:     ratelimit.PoolKey{Organization: "acme-prod"},
		Workload: demoWorkload,
		Pod:      "dev-workers",
	})
	if err != nil {
		d.close()
		return nil, err
	}
	px, err := proxy.New(proxy.Config{Upstream: d.mockURL, MaxWait: 5 * time.Second, Logger: quiet}, limiter)
	if err != nil {
		d.close()
		return nil, err
	}
	if d.proxyURL, err = d.serve(px.Handler()); err != nil {
		d.close()
		return nil, err
	}

	ctx, d.stop = context.WithCancel(ctx)
	sdk := anthropic.NewClient(option.WithoutEnvironmentDefaults(), option.WithBaseURL(d.proxyURL),
		option.WithAPIKey("dev-key"), option.WithMaxRetries(0))
	d.wg.Add(1)
	go func() {
		defer d.wg.Done()
		d.superviseWorkers(ctx, kube, rdb, sdk)
	}()
	return d, nil
}

// serve listens on a free loopback port and returns the server's URL.
func (d *demoTraffic) serve(h http.Handler) (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
	d.servers = append(d.servers, srv)
	go func() { _ = srv.Serve(ln) }()
	return "http://" + ln.Addr().String(), nil
}

// superviseWorkers keeps one worker goroutine per replica of the summarizer Deployment.
func (d *demoTraffic) superviseWorkers(ctx context.Context, kube client.Client, rdb *redis.Client, sdk anthropic.Client) {
	var workers []context.CancelFunc
	var wg sync.WaitGroup
	defer func() {
		for _, cancel := range workers {
			cancel()
		}
		wg.Wait()
	}()
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for {
		dep := &appsv1.Deployment{}
		if err := kube.Get(ctx, client.ObjectKey{Namespace: demoNamespace, Name: demoDeployment}, dep); err == nil {
			want := int(ptr.Deref(dep.Spec.Replicas, 1))
			for len(workers) < want {
				wctx, cancel := context.WithCancel(ctx)
				workers = append(workers, cancel)
				wg.Add(1)
				go func() {
					defer wg.Done()
					work(wctx, rdb, sdk)
				}()
			}
			for len(workers) > want {
				workers[len(workers)-1]()
				workers = workers[:len(workers)-1]
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

// work is one worker replica: take a job, call the API, acknowledge; a job whose call fails
// goes back to the queue.
func work(ctx context.Context, rdb *redis.Client, sdk anthropic.Client) {
	for ctx.Err() == nil {
		job, err := rdb.BLMove(ctx, "jobs", "jobs:processing", "LEFT", "RIGHT", time.Second).Result()
		if err != nil {
			if !errors.Is(err, redis.Nil) && ctx.Err() == nil {
				sleep(ctx, time.Second)
			}
			continue
		}
		_, callErr := sdk.Messages.New(context.WithoutCancel(ctx), anthropic.MessageNewParams{
			Model:     demoModel,
			MaxTokens: 300,
			Messages:  []anthropic.MessageParam{anthropic.NewUserMessage(anthropic.NewTextBlock("Summarize " + job))},
		})
		ack := context.WithoutCancel(ctx)
		if callErr != nil {
			_ = rdb.RPush(ack, "jobs", job).Err() // back to the queue
			sleep(ctx, time.Second)
		}
		_ = rdb.LRem(ack, "jobs:processing", 1, job).Err()
	}
}

func sleep(ctx context.Context, d time.Duration) {
	select {
	case <-ctx.Done():
	case <-time.After(d):
	}
}

// close stops the workers and the servers.
func (d *demoTraffic) close() {
	if d.stop != nil {
		d.stop()
	}
	d.wg.Wait()
	for _, srv := range d.servers {
		_ = srv.Close()
	}
}
