package controllerbench

import (
	"strings"
	"testing"
	"time"
)

// The benchmarks' figures are only as good as the arithmetic and parsing under them;
// these tests pin those down without an API server.

func TestPercentileIsNearestRank(t *testing.T) {
	var samples []time.Duration
	for i := 100; i >= 1; i-- { // unsorted on purpose
		samples = append(samples, time.Duration(i)*time.Millisecond)
	}
	cases := []struct {
		p    float64
		want time.Duration
	}{
		{0, 1 * time.Millisecond},
		{1, 1 * time.Millisecond},
		{50, 50 * time.Millisecond},
		{50.5, 51 * time.Millisecond},
		{99, 99 * time.Millisecond},
		{100, 100 * time.Millisecond},
	}
	for _, c := range cases {
		if got := percentile(samples, c.p); got != c.want {
			t.Errorf("percentile(1..100 ms, %v) = %s, want %s", c.p, got, c.want)
		}
	}
	if got := percentile([]time.Duration{3 * time.Second}, 99); got != 3*time.Second {
		t.Errorf("p99 of one sample = %s, want that sample", got)
	}
	if got := percentile(nil, 50); got != 0 {
		t.Errorf("percentile of nothing = %s, want 0", got)
	}
	if samples[0] != 100*time.Millisecond {
		t.Errorf("percentile reordered its input")
	}
}

func TestUniformSumQuantileMatchesTheTrapezoid(t *testing.T) {
	const tolerance = time.Millisecond
	cases := []struct {
		name string
		a, b time.Duration
		q    float64
		want time.Duration
	}{
		{"KEDA+HPA median", 30 * time.Second, 15 * time.Second, 0.5, 22500 * time.Millisecond},
		{"KEDA+HPA p99", 30 * time.Second, 15 * time.Second, 0.99, 42 * time.Second},
		{"KEDA+HPA max", 30 * time.Second, 15 * time.Second, 1, 45 * time.Second},
		{"KEDA+HPA min", 30 * time.Second, 15 * time.Second, 0, 0},
		// Below the lower corner (q <= 15/60): s^2 / (2*30*15) = 0.1 -> s = sqrt(90).
		{"KEDA+HPA p10", 30 * time.Second, 15 * time.Second, 0.1, 9486833 * time.Microsecond},
		{"argument order does not matter", 15 * time.Second, 30 * time.Second, 0.99, 42 * time.Second},
		{"one loop alone is uniform", 15 * time.Second, 0, 0.5, 7500 * time.Millisecond},
		{"one loop alone p99", 15 * time.Second, 0, 0.99, 14850 * time.Millisecond},
	}
	for _, c := range cases {
		got := uniformSumQuantile(c.a, c.b, c.q)
		if diff := (got - c.want).Abs(); diff > tolerance {
			t.Errorf("%s: quantile %v of U(0,%s)+U(0,%s) = %s, want %s", c.name, c.q, c.a, c.b, got, c.want)
		}
	}
}

func TestParseRedisInfo(t *testing.T) {
	info := strings.Join([]string{
		"# Stats",
		"total_connections_received:7",
		"total_commands_processed:1234",
		"total_reads_processed:310",
		"total_writes_processed:305",
		"",
		"# Commandstats",
		"cmdstat_llen:calls=600,usec=300,usec_per_call=0.50,rejected_calls=0,failed_calls=0",
		"cmdstat_exec:calls=300,usec=900,usec_per_call=3.00,rejected_calls=0,failed_calls=0",
		"cmdstat_info:calls=2,usec=40,usec_per_call=20.00,rejected_calls=0,failed_calls=0",
	}, "\r\n")
	got, err := parseRedisInfo(info)
	if err != nil {
		t.Fatalf("parseRedisInfo: %v", err)
	}
	if got.Commands != 1234 || got.Reads != 310 || got.Writes != 305 {
		t.Errorf("counters = %+v, want commands 1234, reads 310, writes 305", got)
	}
	if got.Calls["llen"] != 600 || got.Calls["exec"] != 300 || got.Calls["info"] != 2 || len(got.Calls) != 3 {
		t.Errorf("calls = %v", got.Calls)
	}

	earlier := redisCounters{Commands: 1000, Reads: 300, Writes: 300, Calls: map[string]int64{"llen": 500, "exec": 250, "info": 2}}
	d := got.since(earlier)
	if d.Commands != 234 || d.Reads != 10 || d.Writes != 5 || d.Calls["llen"] != 100 || d.Calls["exec"] != 50 {
		t.Errorf("difference = %+v", d)
	}
	if _, unchanged := d.Calls["info"]; unchanged {
		t.Errorf("difference keeps a command whose count did not change: %v", d.Calls)
	}

	for name, bad := range map[string]string{
		"missing counters": "# Stats\r\ntotal_commands_processed:1\r\n",
		"not a number":     "total_commands_processed:x\r\ntotal_reads_processed:1\r\ntotal_writes_processed:1\r\n",
		"stat without calls": "total_commands_processed:1\r\ntotal_reads_processed:1\r\ntotal_writes_processed:1\r\n" +
			"cmdstat_get:usec=1\r\n",
	} {
		if _, err := parseRedisInfo(bad); err == nil {
			t.Errorf("%s: parseRedisInfo accepted %q", name, bad)
		}
	}
}

func TestParseProcStatus(t *testing.T) {
	status := "Name:\tmanager\nVmPeak:\t 1500000 kB\nVmHWM:\t   81920 kB\nVmRSS:\t   65536 kB\nThreads:\t12\n"
	got, err := parseProcStatus(status)
	if err != nil {
		t.Fatalf("parseProcStatus: %v", err)
	}
	if got.RSS != 64<<20 || got.PeakRSS != 80<<20 {
		t.Errorf("memory = %+v, want RSS 64 MiB and peak 80 MiB", got)
	}
	if _, err := parseProcStatus("Name:\tmanager\nVmRSS:\t 1 kB\n"); err == nil {
		t.Error("parseProcStatus accepted a status without VmHWM")
	}
	if _, err := parseProcStatus("VmRSS:\t lots\nVmHWM:\t 1 kB\n"); err == nil {
		t.Error("parseProcStatus accepted a malformed VmRSS")
	}
}

func TestMetricSumsFilterByLabels(t *testing.T) {
	text := `# TYPE controller_runtime_reconcile_total counter
controller_runtime_reconcile_total{controller="claudecapacity",result="success"} 90
controller_runtime_reconcile_total{controller="claudecapacity",result="error"} 2
controller_runtime_reconcile_total{controller="other",result="success"} 1000
# TYPE rest_client_requests_total counter
rest_client_requests_total{code="200",host="h",method="GET"} 10
rest_client_requests_total{code="409",host="h",method="PATCH"} 1
rest_client_requests_total{code="200",host="h",method="PATCH"} 4
# TYPE workqueue_queue_duration_seconds histogram
workqueue_queue_duration_seconds_bucket{name="claudecapacity",le="+Inf"} 4
workqueue_queue_duration_seconds_sum{name="claudecapacity"} 0.5
workqueue_queue_duration_seconds_count{name="claudecapacity"} 4
`
	m, err := parseMetrics(strings.NewReader(text))
	if err != nil {
		t.Fatalf("parseMetrics: %v", err)
	}
	if got := m.sum("controller_runtime_reconcile_total", map[string]string{"controller": "claudecapacity"}); got != 92 {
		t.Errorf("reconciles of claudecapacity = %v, want 92", got)
	}
	if got := m.sum("controller_runtime_reconcile_total", map[string]string{"controller": "claudecapacity", "result": "error"}); got != 2 {
		t.Errorf("errors = %v, want 2", got)
	}
	if got := m.sum("no_such_metric", nil); got != 0 {
		t.Errorf("missing metric sums to %v", got)
	}
	byMethod := m.byLabel("rest_client_requests_total", "method", nil)
	if byMethod["GET"] != 10 || byMethod["PATCH"] != 5 || len(byMethod) != 2 {
		t.Errorf("requests by method = %v", byMethod)
	}
	empty, err := parseMetrics(strings.NewReader(""))
	if err != nil {
		t.Fatalf("parseMetrics of nothing: %v", err)
	}
	if got := meanDelta(empty, m, "workqueue_queue_duration_seconds", map[string]string{"name": "claudecapacity"}); got != 125*time.Millisecond {
		t.Errorf("mean queue wait = %s, want 125ms", got)
	}
	if got := meanDelta(m, m, "workqueue_queue_duration_seconds", nil); got != 0 {
		t.Errorf("mean over no new observations = %s, want 0", got)
	}
}

func TestParseProcStat(t *testing.T) {
	line := "4242 (kube apiserver) S 17 4242 17 0 -1 4194560 9000 0 0 0 1250 375 0 0 20 0 12 0 100 1000000 5000 18446744073709551615"
	st, err := parseProcStat(line)
	if err != nil {
		t.Fatalf("parseProcStat: %v", err)
	}
	if st.command != "kube apiserver" || st.parent != 17 || st.cpuSeconds != 16.25 {
		t.Errorf("parsed %+v, want command %q, parent 17, 16.25 CPU seconds", st, "kube apiserver")
	}
	for _, bad := range []string{"4242 no parentheses S 1", "4242 (etcd) S 1 2 3", "4242 (etcd) S x 1 2 3 4 5 6 7 8 9 10 11 12"} {
		if _, err := parseProcStat(bad); err == nil {
			t.Errorf("parseProcStat accepted %q", bad)
		}
	}
}
