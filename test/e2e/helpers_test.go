//go:build e2e

package e2e

import (
	"context"
	"crypto/tls"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/claudecap/claudecap/internal/kubeenv"
	"github.com/claudecap/claudecap/internal/localcluster"
)

// httpClient reads the manager's plain-HTTP probes.
var httpClient = &http.Client{Timeout: 2 * time.Second}

// metricsClient scrapes the manager's HTTPS metrics endpoint, whose certificate is
// self-signed when the chart is given none; only 127.0.0.1 is reached.
var metricsClient = &http.Client{
	Timeout:   5 * time.Second,
	Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}},
}

// tools are the binaries the tests run as a user would.
type tools struct {
	root    string
	helm    string
	kubectl string
	env     []string // helm's and kubectl's environment: own cache/config dirs, the admin kubeconfig
}

func findTools(t *testing.T, c *localcluster.Cluster) tools {
	t.Helper()
	root, err := kubeenv.ModuleRoot()
	if err != nil {
		t.Fatal(err)
	}
	assets, err := kubeenv.AssetsDir()
	if err != nil {
		t.Fatal(err)
	}
	tl := tools{root: root, helm: filepath.Join(root, "bin", "helm"), kubectl: filepath.Join(assets, "kubectl")}
	if h := os.Getenv("HELM"); h != "" {
		tl.helm = h
	}
	for _, bin := range []string{tl.helm, tl.kubectl} {
		if _, err := os.Stat(bin); err != nil {
			t.Fatalf("%s is missing (make helm envtest builds it): %v", bin, err)
		}
	}
	home := t.TempDir()
	tl.env = append(os.Environ(), "KUBECONFIG="+c.KubeconfigPath,
		"HELM_CACHE_HOME="+filepath.Join(home, "cache"), "HELM_CONFIG_HOME="+filepath.Join(home, "config"),
		"HELM_DATA_HOME="+filepath.Join(home, "data"))
	return tl
}

// run runs one of the tools from the repository root and fails the test on error.
func (tl tools) run(ctx context.Context, t *testing.T, bin string, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Dir, cmd.Env = tl.root, tl.env
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", filepath.Base(bin), strings.Join(args, " "), err, out)
	}
	return string(out)
}

// phases records when each step of a scenario ran, for the timing table and for the RBAC
// report (which step first needed each permission).
type phases struct {
	t    *testing.T
	list []phaseRecord
}

type phaseRecord struct {
	name       string
	start, end time.Time
	note       string
}

// run runs one phase as a subtest and records its timing; a failed phase stops the test.
func (p *phases) run(name string, f func(t *testing.T) string) {
	p.t.Helper()
	rec := phaseRecord{name: name, start: time.Now()}
	ok := p.t.Run(name, func(t *testing.T) { rec.note = f(t) })
	rec.end = time.Now()
	p.list = append(p.list, rec)
	if !ok {
		p.t.FailNow()
	}
}

// at names the phase running at a time ("setup" before the first, "teardown" after).
func (p *phases) at(when time.Time) string {
	for _, r := range p.list {
		if !when.Before(r.start) && !when.After(r.end) {
			return r.name
		}
	}
	if len(p.list) > 0 && when.Before(p.list[0].start) {
		return "setup"
	}
	return "teardown"
}

func (p *phases) table() string {
	var b strings.Builder
	b.WriteString("| phase | took | what happened |\n|---|---|---|\n")
	for _, r := range p.list {
		fmt.Fprintf(&b, "| %s | %.1f s | %s |\n", r.name, r.end.Sub(r.start).Seconds(), r.note)
	}
	return b.String()
}

// eventually polls cond every 250 ms until it holds, and fails after timeout with the
// last thing cond said. It returns how long it took.
func eventually(t *testing.T, timeout time.Duration, what string, cond func() (bool, string)) time.Duration {
	t.Helper()
	start := time.Now()
	deadline := start.Add(timeout)
	var last string
	for {
		ok, state := cond()
		last = state
		if ok {
			return time.Since(start)
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %s; last: %s", what, timeout, last)
		}
		time.Sleep(250 * time.Millisecond)
	}
}

// stays checks cond every 250 ms for d and fails the first time it does not hold: the
// "stays unchanged for N seconds" assertion of KEDA's e2e tests.
func stays(t *testing.T, d time.Duration, what string, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		if ok, state := cond(); !ok {
			t.Fatalf("%s: broke after %s: %s", what, d-time.Until(deadline).Round(time.Millisecond), state)
		}
		time.Sleep(250 * time.Millisecond)
	}
}
