package controllerbench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// operator is a running manager the benchmarks drive and measure: normally the manager
// binary as a child process, or, with -inprocess, the same controller inside the
// benchmark's process so that go test's -cpuprofile and -memprofile see it.
type operator interface {
	// scrape reads the manager's metrics endpoint.
	scrape() (metricFamilies, error)
	// pid is the process whose memory is the manager's.
	pid() int
	// alive fails the benchmark if the manager has stopped.
	alive(tb testing.TB)
	// stop shuts the manager down; it is idempotent.
	stop(tb testing.TB)
	// logTail is the end of the manager's log, for failure messages.
	logTail() string
	// ownProcess says whether pid's memory is the manager's alone.
	ownProcess() bool
}

// startOperator starts the manager the flags ask for and stops it when the benchmark ends.
func startOperator(tb testing.TB, e *benchEnv) operator {
	tb.Helper()
	if *inProcess {
		return startInProcess(tb, e)
	}
	return startManager(tb, e)
}

// managerProcess is the operator's manager binary running as a child process, with its
// metrics served over plain HTTP on a loopback port.
type managerProcess struct {
	cmd        *exec.Cmd
	metricsURL string
	logPath    string
	exited     chan struct{}
	waitErr    error
}

// startManager starts cmd/manager against the shared API server with its default
// settings (only the metrics address, plain HTTP, and a quiet log level are set) and stops
// it when the benchmark ends.
func startManager(tb testing.TB, e *benchEnv) *managerProcess {
	tb.Helper()
	port, err := freePort()
	if err != nil {
		tb.Fatalf("finding a port for the manager's metrics: %v", err)
	}
	addr := net.JoinHostPort("127.0.0.1", port)
	m := &managerProcess{
		metricsURL: "http://" + addr + "/metrics",
		logPath:    filepath.Join(tb.TempDir(), "manager.log"),
		exited:     make(chan struct{}),
	}
	logFile, err := os.Create(m.logPath)
	if err != nil {
		tb.Fatalf("creating the manager's log: %v", err)
	}
	m.cmd = exec.Command(e.managerBin,
		"--metrics-bind-address="+addr, "--metrics-secure=false",
		"--health-probe-bind-address=0", "--zap-log-level=error")
	m.cmd.Env = append(os.Environ(), "KUBECONFIG="+e.kubeconfig)
	m.cmd.Stdout, m.cmd.Stderr = logFile, logFile
	if err := m.cmd.Start(); err != nil {
		_ = logFile.Close()
		tb.Fatalf("starting the manager: %v", err)
	}
	go func() {
		m.waitErr = m.cmd.Wait()
		_ = logFile.Close()
		close(m.exited)
	}()
	tb.Cleanup(func() { m.stop(tb) })
	if err := waitServing(m.metricsURL, m.exited, 30*time.Second); err != nil {
		tb.Fatalf("manager: %v\n%s", err, m.logTail())
	}
	return m
}

// waitServing waits until the metrics endpoint answers, which a manager opens once it
// has started its controllers, or until exited is closed.
func waitServing(metricsURL string, exited <-chan struct{}, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		if _, err := scrapeMetrics(metricsURL); err == nil {
			return nil
		} else if time.Now().After(deadline) {
			return fmt.Errorf("metrics endpoint not serving after %s: %w", timeout, err)
		}
		select {
		case <-exited:
			return errors.New("the manager exited early")
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// stop asks the manager to shut down (SIGTERM, as the kubelet would) and kills it if it
// has not exited within ten seconds.
func (m *managerProcess) stop(tb testing.TB) {
	select {
	case <-m.exited:
		return
	default:
	}
	_ = m.cmd.Process.Signal(syscall.SIGTERM) // it may be exiting already; Wait reports how
	select {
	case <-m.exited:
	case <-time.After(10 * time.Second):
		_ = m.cmd.Process.Kill()
		<-m.exited
		tb.Errorf("manager did not stop within 10 s of SIGTERM\n%s", m.logTail())
	}
}

func (m *managerProcess) pid() int { return m.cmd.Process.Pid }

func (m *managerProcess) ownProcess() bool { return true }

// alive fails the benchmark if the manager has exited.
func (m *managerProcess) alive(tb testing.TB) {
	tb.Helper()
	select {
	case <-m.exited:
		tb.Fatalf("the manager exited: %v\n%s", m.waitErr, m.logTail())
	default:
	}
}

// logTail is the end of the manager's log, for failure messages.
func (m *managerProcess) logTail() string {
	data, err := os.ReadFile(m.logPath)
	if err != nil {
		return "(no manager log: " + err.Error() + ")"
	}
	const keep = 4000
	if len(data) > keep {
		data = data[len(data)-keep:]
	}
	return string(data)
}

func (m *managerProcess) scrape() (metricFamilies, error) { return scrapeMetrics(m.metricsURL) }

// scrapeMetrics reads a Prometheus text endpoint.
func scrapeMetrics(metricsURL string) (metricFamilies, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, metricsURL, nil)
	if err != nil {
		return nil, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer func() { _ = resp.Body.Close() }()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET %s: %s", metricsURL, resp.Status)
	}
	return parseMetrics(resp.Body)
}

// metricFamilies are the metrics of one scrape by name.
type metricFamilies map[string]*dto.MetricFamily

func parseMetrics(r io.Reader) (metricFamilies, error) {
	parser := expfmt.NewTextParser(model.UTF8Validation)
	families, err := parser.TextToMetricFamilies(r)
	if err != nil {
		return nil, fmt.Errorf("parsing metrics: %w", err)
	}
	return families, nil
}

// sum adds up the counter, gauge or untyped values of name over every series whose labels
// include all of match; for a histogram or summary it adds up the sample sums.
func (f metricFamilies) sum(name string, match map[string]string) float64 {
	total, _ := f.sumAndCount(name, match)
	return total
}

// sumAndCount is sum plus, for histograms and summaries, the sample count.
func (f metricFamilies) sumAndCount(name string, match map[string]string) (sum, count float64) {
	family, ok := f[name]
	if !ok {
		return 0, 0
	}
	for _, metric := range family.GetMetric() {
		if !hasLabels(metric, match) {
			continue
		}
		switch {
		case metric.GetCounter() != nil:
			sum += metric.GetCounter().GetValue()
		case metric.GetGauge() != nil:
			sum += metric.GetGauge().GetValue()
		case metric.GetUntyped() != nil:
			sum += metric.GetUntyped().GetValue()
		case metric.GetHistogram() != nil:
			sum += metric.GetHistogram().GetSampleSum()
			count += float64(metric.GetHistogram().GetSampleCount())
		case metric.GetSummary() != nil:
			sum += metric.GetSummary().GetSampleSum()
			count += float64(metric.GetSummary().GetSampleCount())
		}
	}
	return sum, count
}

// byLabel adds up a counter per value of one label, over series that include match.
func (f metricFamilies) byLabel(name, label string, match map[string]string) map[string]float64 {
	out := map[string]float64{}
	family, ok := f[name]
	if !ok {
		return out
	}
	for _, metric := range family.GetMetric() {
		if !hasLabels(metric, match) {
			continue
		}
		for _, l := range metric.GetLabel() {
			if l.GetName() == label {
				out[l.GetValue()] += metric.GetCounter().GetValue()
			}
		}
	}
	return out
}

func hasLabels(metric *dto.Metric, match map[string]string) bool {
	found := 0
	for _, l := range metric.GetLabel() {
		if want, ok := match[l.GetName()]; ok {
			if l.GetValue() != want {
				return false
			}
			found++
		}
	}
	return found == len(match)
}

// processMemory is a process's resident memory from /proc/<pid>/status, in bytes: VmRSS
// now and VmHWM, the peak.
type processMemory struct {
	RSS, PeakRSS int64
}

func readProcessMemory(pid int) (processMemory, error) {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return processMemory{}, fmt.Errorf("reading the manager's memory: %w", err)
	}
	return parseProcStatus(string(data))
}

// parseProcStatus reads VmRSS and VmHWM ("VmRSS:\t  51234 kB") from a /proc status file.
func parseProcStatus(status string) (processMemory, error) {
	var mem processMemory
	fields := map[string]*int64{"VmRSS": &mem.RSS, "VmHWM": &mem.PeakRSS}
	seen := 0
	for line := range strings.Lines(status) {
		key, value, ok := strings.Cut(line, ":")
		dst, wanted := fields[key]
		if !ok || !wanted {
			continue
		}
		var kib int64
		if _, err := fmt.Sscanf(strings.TrimSpace(value), "%d kB", &kib); err != nil {
			return processMemory{}, fmt.Errorf("parsing %s %q: %w", key, strings.TrimSpace(value), err)
		}
		*dst = kib * 1024
		seen++
	}
	if seen != len(fields) {
		return processMemory{}, errors.New("the status file has no VmRSS or no VmHWM")
	}
	return mem, nil
}

// freePort returns a loopback TCP port that was free a moment ago.
func freePort() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer func() { _ = l.Close() }()
	_, port, err := net.SplitHostPort(l.Addr().String())
	return port, err
}

// clockTicksPerSecond is USER_HZ, the unit of /proc/<pid>/stat times: 100 on every Linux
// architecture Go supports.
const clockTicksPerSecond = 100

// procStat is what the benchmark reads from a /proc/<pid>/stat line.
type procStat struct {
	command    string
	parent     int
	cpuSeconds float64
}

// parseProcStat reads the command, parent pid and user+system CPU time from a
// /proc/<pid>/stat line. The command sits in parentheses and may hold spaces, so fields
// are counted from the last ')'.
func parseProcStat(line string) (procStat, error) {
	open, closing := strings.IndexByte(line, '('), strings.LastIndexByte(line, ')')
	if open < 0 || closing < open {
		return procStat{}, fmt.Errorf("no (command) in stat line %q", line)
	}
	fields := strings.Fields(line[closing+1:])
	// After the command: state(3) ppid(4) ... utime(14) stime(15).
	const ppid, utime, stime = 1, 11, 12
	if len(fields) <= stime {
		return procStat{}, fmt.Errorf("stat line has %d fields after the command, want more than %d", len(fields), stime)
	}
	var st procStat
	st.command = line[open+1 : closing]
	var user, system int64
	if _, err := fmt.Sscanf(fields[ppid]+" "+fields[utime]+" "+fields[stime], "%d %d %d", &st.parent, &user, &system); err != nil {
		return procStat{}, fmt.Errorf("parsing stat fields: %w", err)
	}
	st.cpuSeconds = float64(user+system) / clockTicksPerSecond
	return st, nil
}

// childCPU is the CPU seconds used so far by each direct child process of this one, by
// command (kube-apiserver, etcd, redis-server, manager).
func childCPU() map[string]float64 {
	out := map[string]float64{}
	self := os.Getpid()
	stats, _ := filepath.Glob("/proc/[0-9]*/stat")
	for _, path := range stats {
		data, err := os.ReadFile(path)
		if err != nil {
			continue // the process has gone
		}
		st, err := parseProcStat(string(data))
		if err != nil || st.parent != self {
			continue
		}
		out[st.command] += st.cpuSeconds
	}
	return out
}
