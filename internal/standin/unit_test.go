package standin

import (
	"context"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"

	"github.com/claudecap/claudecap/internal/testutil/redistest"
)

func TestConfigValidation(t *testing.T) {
	valid := func() Config {
		return Config{
			Client: fake.NewClientBuilder().Build(), Namespace: "ns", Deployment: "workers",
			Redis:   redis.NewClient(&redis.Options{Addr: "127.0.0.1:1"}),
			Sidecar: func(context.Context, string) (string, func(), error) { return "", nil, nil },
		}
	}
	cases := map[string]struct {
		change func(*Config)
		err    string // "" means valid
	}{
		"valid":              {func(*Config) {}, ""},
		"no client":          {func(c *Config) { c.Client = nil }, "missing Client"},
		"no deployment":      {func(c *Config) { c.Deployment = "" }, "missing Namespace or Deployment"},
		"no redis":           {func(c *Config) { c.Redis = nil }, "missing Redis"},
		"no sidecar":         {func(c *Config) { c.Sidecar = nil }, "missing Sidecar"},
		"negative think":     {func(c *Config) { c.ThinkTime = -time.Second }, "must not be negative"},
		"negative tokens":    {func(c *Config) { c.Request.InputTokens = -1 }, "must not be negative"},
		"group alone":        {func(c *Config) { c.Queue.Group = "g" }, `Queue.Group "g" needs Queue.Stream`},
		"stream alone":       {func(c *Config) { c.Queue.Stream = "s" }, `Queue.Stream "s" needs Queue.Group`},
		"stream and list":    {func(c *Config) { c.Queue = Queue{Stream: "s", Group: "g", List: "l"} }, "not both"},
		"field on a list":    {func(c *Config) { c.Queue.Field = "f" }, "streams only"},
		"list is processing": {func(c *Config) { c.Queue.List = DefaultProcessingList }, "are both"},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			cfg := valid()
			tc.change(&cfg)
			_, err := cfg.withDefaults()
			switch {
			case tc.err == "" && err != nil:
				t.Fatalf("want valid, got %v", err)
			case tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)):
				t.Fatalf("want an error containing %q, got %v", tc.err, err)
			}
		})
	}
}

func TestConfigDefaults(t *testing.T) {
	cfg, err := Config{
		Client: fake.NewClientBuilder().Build(), Namespace: "ns", Deployment: "workers",
		Redis:      redis.NewClient(&redis.Options{Addr: "127.0.0.1:1"}),
		Sidecar:    func(context.Context, string) (string, func(), error) { return "", nil, nil },
		StartDelay: -1, Queue: Queue{Stream: "s", Group: "g"},
	}.withDefaults()
	if err != nil {
		t.Fatal(err)
	}
	checks := []struct {
		name      string
		got, want any
	}{
		{"StartDelay (negative means none)", cfg.StartDelay, time.Duration(0)},
		{"GracePeriod", cfg.GracePeriod, DefaultGracePeriod},
		{"PollInterval", cfg.PollInterval, DefaultPollInterval},
		{"FailureBackoff", cfg.FailureBackoff, DefaultFailureBackoff},
		{"List (a stream needs none)", cfg.Queue.List, ""},
		{"Field", cfg.Queue.Field, DefaultStreamField},
		{"Model", cfg.Request.Model, DefaultModel},
		{"MaxTokens", cfg.Request.MaxTokens, int64(DefaultMaxTokens)},
		{"InputTokens", cfg.Request.InputTokens, DefaultInputTokens},
		{"APIKey", cfg.APIKey, DefaultAPIKey},
	}
	for _, c := range checks {
		if c.got != c.want {
			t.Errorf("%s = %v, want %v", c.name, c.got, c.want)
		}
	}
}

func TestScaleInVictimsPreferStartingThenNewest(t *testing.T) {
	var pods []*pod
	for seq := 1; seq <= 5; seq++ {
		p := newPod(context.Background(), "", seq)
		if seq != 2 && seq != 4 { // 2 and 4 are still Starting
			p.becomeReady()
		}
		pods = append(pods, p)
	}
	cases := []struct {
		n    int
		want []int
	}{
		{0, nil},
		{-1, nil},
		{1, []int{4}},
		{2, []int{4, 2}},
		{3, []int{4, 2, 5}},
		{5, []int{4, 2, 5, 3, 1}},
		{9, []int{4, 2, 5, 3, 1}},
	}
	for _, tc := range cases {
		var got []int
		for _, p := range scaleInVictims(pods, tc.n) {
			got = append(got, p.seq)
		}
		if !equalInts(got, tc.want) {
			t.Errorf("scaleInVictims(n=%d) = %v, want %v", tc.n, got, tc.want)
		}
	}
}

func equalInts(a, b []int) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// TestPromptSize checks the prompt against the mock's counting rule: ceil(bytes / 4) for
// the text plus 3 for the message.
func TestPromptSize(t *testing.T) {
	for _, tokens := range []int{1, 3, 10, 200, 1200} {
		f := &Fleet{filler: fillerFor(tokens)}
		prompt := f.prompt("job-7")
		counted := (len(prompt)+3)/4 + 3
		minimum := (len("Summarize job job-7.\n")+3)/4 + 3
		if counted != max(tokens, minimum) {
			t.Errorf("InputTokens %d: the mock counts %d tokens in the prompt", tokens, counted)
		}
		if !strings.HasPrefix(prompt, "Summarize job job-7.\n") {
			t.Errorf("the prompt does not start with the job: %.40q", prompt)
		}
	}
}

func TestPodTerminatesOnce(t *testing.T) {
	p := newPod(context.Background(), "p", 1)
	if !p.terminate(time.Hour) || p.terminate(time.Hour) {
		t.Fatal("terminate should report true once, then false")
	}
	if p.becomeReady() {
		t.Fatal("a Terminating pod became Ready")
	}
	if !p.isStopping() || p.work.Err() != nil {
		t.Fatal("a terminated pod should stop taking jobs but keep its work until the grace period ends")
	}
	p.release()
}

func TestGracePeriodCancelsWork(t *testing.T) {
	p := newPod(context.Background(), "p", 1)
	p.becomeReady()
	p.terminate(10 * time.Millisecond)
	select {
	case <-p.work.Done():
	case <-time.After(2 * time.Second):
		t.Fatal("the grace period ended but the pod's work was not cancelled")
	}
}

// An acknowledgement whose reply never came may still have run: Redis frozen for longer
// than the client's read timeout runs the queued LREM when it wakes. The retry then finds
// the job gone; the job was done once and must count as acknowledged, not as lost.
func TestAckThatTimedOutButLandedCountsOnce(t *testing.T) {
	srv := redistest.Start(t)
	rdb := srv.NewClient(func(o *redis.Options) { o.ReadTimeout, o.MaxRetries = 300*time.Millisecond, -1 })
	ctx := context.Background()
	if err := rdb.RPush(ctx, DefaultProcessingList, "job-1").Err(); err != nil {
		t.Fatal(err)
	}
	f := &Fleet{queue: listQueue{rdb: rdb, list: DefaultList, processing: DefaultProcessingList},
		stats: newCounters(), log: slog.New(slog.DiscardHandler)}
	p := &pod{name: "worker-0", work: ctx}

	srv.Pause(500 * time.Millisecond) // the first LREM times out, then runs on resume
	f.acknowledge(p, job{payload: "job-1"})

	if got := f.Acked()["job-1"]; got != 1 {
		t.Fatalf("job-1 acknowledged %d times, want 1 (stats %+v)", got, f.Stats())
	}
	if st := f.Stats(); st.QueueErrors != 0 || st.JobsCompleted != 1 {
		t.Fatalf("stats %+v, want 1 job completed and no queue error", st)
	}
	if n, err := srv.Client().LLen(ctx, DefaultProcessingList).Result(); err != nil || n != 0 {
		t.Fatalf("processing list holds %d jobs (%v), want 0", n, err)
	}
}
