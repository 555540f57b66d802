package ratelimit

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"sort"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/claudecap/claudecap/internal/testutil/redistest"
	"github.com/claudecap/claudecap/pkg/dimension"
)

// hammerChildEnv carries "addr|organization|class|milliseconds|seed" to a child.
const hammerChildEnv = "CCAP_RATELIMIT_HAMMER_CHILD"

// hammerLimits are small so the buckets bind many times during the run:
// refill 20 requests, 200 input and 100 output tokens per second.
var hammerLimits = Limits{RequestsPerMinute: 1200, InputTokensPerMinute: 12000, OutputTokensPerMinute: 6000}

// logEntry is one change the pool applied, as Redis reported it.
type logEntry struct {
	Seq int64 `json:"seq"`
	// At is Redis time in microseconds.
	At int64 `json:"at"`
	// Take is set for admissions (its output is held, not taken), Give for
	// settlements of requests and input (negative = debt).
	Take Amounts `json:"take"`
	Give Amounts `json:"give"`
	// Release and Charge are a settlement's output: the hold it releases and
	// the output it charges.
	Release int64 `json:"release"`
	Charge  int64 `json:"charge"`
	// Expires is when the reservation's lease ends (µs); its hold's slot.
	Expires int64 `json:"expires"`
}

// hammer runs goroutines against the pool until the deadline and returns every
// admission and settlement with Redis's sequence number and time.
func hammer(rdb redis.UniversalClient, pool PoolKey, goroutines int, d time.Duration, seed uint64) ([]logEntry, error) {
	const lease = 2 * time.Second
	l, err := New(rdb, Options{Pool: pool, Workload: "ai/hammer", Lease: lease})
	if err != nil {
		return nil, err
	}
	deadline := time.Now().Add(d)
	var (
		mu   sync.Mutex
		log  []logEntry
		errs []error
		wg   sync.WaitGroup
	)
	add := func(e logEntry) { mu.Lock(); log = append(log, e); mu.Unlock() }
	for g := range goroutines {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(seed, uint64(g)))
			ctx, cancel := context.WithDeadline(context.Background(), deadline)
			defer cancel()
			for ctx.Err() == nil {
				cost := Amounts{1, 1 + rng.Int64N(60), 1 + rng.Int64N(40)}
				var r *Reservation
				var err error
				if g%2 == 0 {
					r, err = l.Wait(ctx, cost)
				} else if r, err = l.TryReserve(ctx, cost); errors.Is(err, ErrRateLimited) {
					time.Sleep(2 * time.Millisecond)
					continue
				}
				if err != nil {
					if ctx.Err() == nil && !errors.Is(err, context.DeadlineExceeded) {
						mu.Lock()
						errs = append(errs, err)
						mu.Unlock()
					}
					return
				}
				expires := r.GrantedAt.Add(lease).UnixMicro()
				add(logEntry{Seq: r.Seq, At: r.GrantedAt.UnixMicro(), Take: cost, Expires: expires})
				var s Settlement
				var charge int64
				switch p := rng.IntN(10); {
				case p < 5: // Usually less than reserved, sometimes an overage.
					charge = rng.Int64N(cost[dimension.OutputTokens] + 5)
					s, err = r.Settle(context.Background(), Actual{
						InputTokens:  rng.Int64N(cost[dimension.InputTokens] + 10),
						OutputTokens: charge,
					})
				case p < 6:
					s, err = r.Cancel(context.Background())
				default:
					continue // Never settled: stays charged, its lease expires.
				}
				if err != nil {
					mu.Lock()
					errs = append(errs, err)
					mu.Unlock()
					return
				}
				give := Amounts{dimension.Requests: s.Returned[dimension.Requests], dimension.InputTokens: s.Returned[dimension.InputTokens]}
				add(logEntry{Seq: s.Seq, At: s.At.UnixMicro(), Give: give, Release: cost[dimension.OutputTokens], Charge: charge, Expires: expires})
			}
		})
	}
	wg.Wait()
	return log, errors.Join(errs...)
}

// runHammerChild is the body of a child client process: hammer, then print
// the log as JSON lines on stdout.
func runHammerChild() int {
	var addr, org, class string
	var ms, seed uint64
	parts := bytes.Split([]byte(os.Getenv(hammerChildEnv)), []byte("|"))
	if len(parts) != 5 {
		fmt.Fprintln(os.Stderr, "hammer child: bad", hammerChildEnv)
		return 2
	}
	addr, org, class = string(parts[0]), string(parts[1]), string(parts[2])
	ms, _ = strconv.ParseUint(string(parts[3]), 10, 64)
	seed, _ = strconv.ParseUint(string(parts[4]), 10, 64)
	rdb := redis.NewClient(&redis.Options{Addr: addr})
	defer func() { _ = rdb.Close() }()
	log, err := hammer(rdb, PoolKey{org, class}, 8, time.Duration(ms)*time.Millisecond, seed)
	if err != nil {
		fmt.Fprintln(os.Stderr, "hammer child:", err)
		return 1
	}
	enc := json.NewEncoder(os.Stdout)
	for _, e := range log {
		if err := enc.Encode(e); err != nil {
			return 1
		}
	}
	return 0
}

func startHammerChild(t *testing.T, addr string, pool PoolKey, d time.Duration, seed int) (*exec.Cmd, *bytes.Buffer, io.Reader) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$") // #nosec G204 -- re-executes this test binary.
	cmd.Env = append(os.Environ(), fmt.Sprintf("%s=%s|%s|%s|%d|%d", hammerChildEnv, addr, pool.Organization, pool.Class, d.Milliseconds(), seed))
	stderr := &bytes.Buffer{}
	cmd.Stderr = stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting hammer child: %v", err)
	}
	return cmd, stderr, stdout
}

// TestConcurrentClientsNeverExceedTheBucket hammers one pool from goroutines in
// this process and from three child processes, then replays the combined log,
// in Redis's order and with Redis's timestamps, through an independent model
// of the bucket: every admission must fit, the log must hold every change, and
// the model must end where Redis ended.
func TestConcurrentClientsNeverExceedTheBucket(t *testing.T) {
	ctx := context.Background()
	srv := redistest.Start(t)
	pool := PoolKey{"acme", "sonnet"}
	if err := WritePoolConfig(ctx, srv.Client(), pool, PoolConfig{Limits: hammerLimits}); err != nil {
		t.Fatal(err)
	}
	const run = 2500 * time.Millisecond

	type child struct {
		cmd    *exec.Cmd
		stderr *bytes.Buffer
		log    []logEntry
		err    error
		done   chan struct{}
	}
	children := make([]*child, 3)
	for i := range children {
		cmd, stderr, stdout := startHammerChild(t, srv.Addr(), pool, run, i+1)
		c := &child{cmd: cmd, stderr: stderr, done: make(chan struct{})}
		children[i] = c
		go func() {
			defer close(c.done)
			sc := bufio.NewScanner(stdout)
			for sc.Scan() {
				var e logEntry
				if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
					c.err = err
					return
				}
				c.log = append(c.log, e)
			}
		}()
	}
	log, err := hammer(srv.Client(), pool, 16, run, 99)
	if err != nil {
		t.Fatalf("in-process hammer: %v", err)
	}
	processes := map[string]int{"test": len(log)}
	for i, c := range children {
		<-c.done
		if err := c.cmd.Wait(); err != nil || c.err != nil {
			t.Fatalf("child %d: %v %v\n%s", i, err, c.err, c.stderr)
		}
		processes[fmt.Sprint("child", i)] = len(c.log)
		log = append(log, c.log...)
	}
	for p, n := range processes {
		if n == 0 {
			t.Fatalf("process %s logged no admissions; the test would prove nothing (%v)", p, processes)
		}
	}

	sort.Slice(log, func(i, j int) bool { return log[i].Seq < log[j].Seq })
	for i, e := range log {
		if e.Seq != int64(i+1) {
			t.Fatalf("log entry %d has seq %d: the log misses or repeats a change", i, e.Seq)
		}
	}
	final, err := replayBucket(hammerLimits, log)
	if err != nil {
		t.Fatal(err)
	}

	// The model must end exactly where Redis's stored state ended.
	st, err := ReadBucket(ctx, srv.Client(), pool)
	if err != nil {
		t.Fatal(err)
	}
	for d := range 3 {
		if diff := st.Level[d] - final[d]; diff > 1e-3 || diff < -1e-3 {
			t.Errorf("%s: Redis ended at %.4f, the model at %.4f", dimension.Dimension(d), st.Level[d], final[d])
		}
	}
	if st.Seq != int64(len(log)) || st.UpdatedAt.UnixMicro() != log[len(log)-1].At {
		t.Errorf("Redis state seq %d at %s, log has %d changes ending at %d", st.Seq, st.UpdatedAt, len(log), log[len(log)-1].At)
	}
	t.Logf("%d changes from 4 processes (%v)", len(log), processes)
}

// replayBucket is an independent model of the pool: capacity = limit,
// continuous refill of limit/60 per second between the Redis timestamps of the
// log; an admission must fit in all three dimensions (output: level minus the
// output held by unsettled calls) and holds its output; a settlement gives
// back (or charges) requests and input up to capacity, releases its hold and
// charges the output produced; a hold whose lease slot (60 s wide) has ended
// is charged in full. It reports the first admission that did not fit and
// returns the final levels.
func replayBucket(limits Limits, log []logEntry) ([3]float64, error) {
	capacity := [3]float64{float64(limits.RequestsPerMinute), float64(limits.InputTokensPerMinute), float64(limits.OutputTokensPerMinute)}
	level := capacity
	lowest := capacity
	const slot = 60_000_000
	holds := map[int64]float64{} // lease slot -> output held
	held := 0.0
	var last int64
	for i, e := range log {
		if i > 0 && e.At < last {
			return level, fmt.Errorf("seq %d at %d µs is earlier than the change before it (%d µs)", e.Seq, e.At, last)
		}
		if i > 0 {
			elapsed := float64(e.At-last) / 1e6
			for d := range level {
				level[d] = min(capacity[d], level[d]+elapsed*capacity[d]/60)
			}
		}
		for s, amount := range holds {
			if (s+1)*slot <= e.At {
				level[2], held = level[2]-amount, held-amount
				delete(holds, s)
			}
		}
		last = e.At
		if e.Take != (Amounts{}) {
			take := [3]float64{float64(e.Take[dimension.Requests]), float64(e.Take[dimension.InputTokens]), float64(e.Take[dimension.OutputTokens])}
			room := [3]float64{level[0], level[1], level[2] - held}
			for d := range take {
				if take[d] > room[d]+1e-6*capacity[d] {
					return level, fmt.Errorf("over-grant at seq %d: %s took %.0f with only %.4f in the bucket", e.Seq, dimension.Dimension(d), take[d], room[d])
				}
			}
			level[0] -= take[0]
			level[1] -= take[1]
			holds[e.Expires/slot] += take[2]
			held += take[2]
		} else {
			level[0] = min(capacity[0], level[0]+float64(e.Give[dimension.Requests]))
			level[1] = min(capacity[1], level[1]+float64(e.Give[dimension.InputTokens]))
			if s := e.Expires / slot; holds[s] > 0 {
				r := min(holds[s], float64(e.Release))
				holds[s] -= r
				held -= r
			}
			level[2] = min(capacity[2], level[2]-float64(e.Charge))
		}
		for d := range level {
			lowest[d] = min(lowest[d], level[d])
		}
		lowest[2] = min(lowest[2], level[2]-held)
	}
	// The run must have drained some bucket, or it tested nothing.
	drained := false
	for d := range level {
		drained = drained || lowest[d] < 0.1*capacity[d]
	}
	if !drained {
		return level, fmt.Errorf("no bucket ever went below 10%% (lowest %v); the hammer did not bind", lowest)
	}
	return level, nil
}

// TestReplayCatchesOverGrant shows the model is not vacuous: a log that
// admits one call too many, or one too early, is refused.
func TestReplayCatchesOverGrant(t *testing.T) {
	limits := Limits{60, 600, 600} // Refill 1 request per second.
	const t0 = 1_700_000_000_000_000
	fits := []logEntry{
		{Seq: 1, At: t0, Take: Amounts{60, 10, 10}},
		{Seq: 2, At: t0 + 1_000_000, Take: Amounts{1, 1, 1}},
	}
	if _, err := replayBucket(limits, fits); err != nil {
		t.Fatalf("valid log refused: %v", err)
	}
	early := []logEntry{fits[0], {Seq: 2, At: t0 + 900_000, Take: Amounts{1, 1, 1}}}
	if _, err := replayBucket(limits, early); err == nil {
		t.Fatalf("an admission 0.1s before the refill was accepted")
	}
	refunded := []logEntry{fits[0], {Seq: 2, At: t0, Give: Amounts{1, 0, 0}}, {Seq: 3, At: t0, Take: Amounts{1, 1, 1}}}
	if _, err := replayBucket(limits, refunded); err != nil {
		t.Fatalf("an admission of a refunded request was refused: %v", err)
	}
	// Output held by an unsettled call is not available, however long it runs.
	holding := []logEntry{
		{Seq: 1, At: t0, Take: Amounts{1, 1, 590}, Expires: t0 + 60_000_000},
		{Seq: 2, At: t0 + 30_000_000, Take: Amounts{1, 1, 20}},
	}
	if _, err := replayBucket(limits, holding); err == nil {
		t.Fatalf("an admission into output held by a call in flight was accepted")
	}
}
