package closedloop

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"sync"
	"syscall"
	"time"
)

// child is a process the lab started: the manager, the mock, or one pod's sidecar proxy.
type child struct {
	name    string
	cmd     *exec.Cmd
	logPath string
	exited  chan struct{}
	waitErr error

	mu       sync.Mutex
	stopping bool
}

// startChild starts bin with args, its output appended to logPath. The kernel kills it if
// the lab dies, so a crashed run leaves no processes behind.
func startChild(name, logPath string, env []string, bin string, args ...string) (*child, error) {
	logFile, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return nil, fmt.Errorf("opening the log of %s: %w", name, err)
	}
	c := &child{name: name, logPath: logPath, exited: make(chan struct{})}
	c.cmd = exec.Command(bin, args...)
	c.cmd.Env = append(os.Environ(), env...)
	c.cmd.Stdout, c.cmd.Stderr = logFile, logFile
	c.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := c.cmd.Start(); err != nil {
		_ = logFile.Close()
		return nil, fmt.Errorf("starting %s: %w", name, err)
	}
	go func() {
		c.waitErr = c.cmd.Wait()
		_ = logFile.Close()
		close(c.exited)
	}()
	return c, nil
}

// stop asks the process to shut down (SIGTERM, as the kubelet would) and kills it if it has
// not exited within grace. It is idempotent.
func (c *child) stop(grace time.Duration) {
	c.mu.Lock()
	c.stopping = true
	c.mu.Unlock()
	select {
	case <-c.exited:
		return
	default:
	}
	_ = c.cmd.Process.Signal(syscall.SIGTERM) // it may be exiting already
	select {
	case <-c.exited:
	case <-time.After(grace):
		_ = c.cmd.Process.Kill()
		<-c.exited
	}
}

// died returns an error when the process exited without being asked to.
func (c *child) died() error {
	select {
	case <-c.exited:
	default:
		return nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.stopping {
		return nil
	}
	return fmt.Errorf("%s exited: %w; log %s:\n%s", c.name, c.exitError(), c.logPath, tail(c.logPath, 3000))
}

// exitError is why the process ended; call it only once it has.
func (c *child) exitError() error {
	if c.waitErr == nil {
		return errors.New("exit status 0")
	}
	return c.waitErr
}

// tail is the end of a log file, for failure messages.
func tail(path string, n int) string {
	data, err := os.ReadFile(path)
	if err != nil {
		return "(no log: " + err.Error() + ")"
	}
	if len(data) > n {
		data = data[len(data)-n:]
	}
	return string(data)
}

// waitHTTP polls url until it answers 200, the process exits, or timeout passes.
func waitHTTP(url string, c *child, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	httpc := &http.Client{Timeout: time.Second}
	for {
		resp, err := httpc.Get(url)
		if err == nil {
			_, _ = io.Copy(io.Discard, resp.Body)
			_ = resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
			err = fmt.Errorf("GET %s: %s", url, resp.Status)
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s not serving after %s: %w", c.name, timeout, err)
		}
		select {
		case <-c.exited:
			return fmt.Errorf("%s exited before serving: %w\n%s", c.name, c.exitError(), tail(c.logPath, 2000))
		case <-time.After(25 * time.Millisecond):
		}
	}
}

// freeAddr returns a loopback address whose port was free a moment ago.
func freeAddr() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer func() { _ = l.Close() }()
	return l.Addr().String(), nil
}

// startServing starts a server process on a free loopback port and waits until probe (a
// path) answers; another process may take the port between the probe and the bind, so it
// tries a few ports.
func startServing(name, logPath string, env []string, bin string, probe string, args func(addr string) []string) (*child, string, error) {
	var lastErr error
	for range 3 {
		addr, err := freeAddr()
		if err != nil {
			return nil, "", err
		}
		c, err := startChild(name, logPath, env, bin, args(addr)...)
		if err != nil {
			return nil, "", err
		}
		if lastErr = waitHTTP("http://"+addr+probe, c, 30*time.Second); lastErr == nil {
			return c, addr, nil
		}
		c.stop(time.Second)
	}
	return nil, "", lastErr
}

// startManager runs cmd/manager against the lab's API server with its default settings,
// except plain-HTTP metrics on loopback (the probe that it runs) and no probe server.
func (l *lab) startManager(logPath string) (*child, error) {
	c, _, err := startServing("manager", logPath, []string{"KUBECONFIG=" + l.kubeconfig}, l.managerBin, "/metrics",
		func(addr string) []string {
			return []string{"--metrics-bind-address=" + addr, "--metrics-secure=false", "--health-probe-bind-address=0"}
		})
	return c, err
}

// startMock runs `claudecap mock` with the lab's limits and latency; it returns the base URL.
func (l *lab) startMock(logPath string) (*child, string, error) {
	limit := fmt.Sprintf("%s=%d/%d/%d", modelClass, limitRPM, limitITPM, limitOTPM)
	c, addr, err := startServing("mock", logPath, nil, l.cliBin, "/mock/stats", func(addr string) []string {
		return []string{"mock", "--listen", addr, "--tier", "unlimited", "--limit", limit,
			"--ttft", "normal:" + ttftMean.String() + "," + ttftSD.String(),
			"--per-token", "fixed:" + perTokenMean.String(),
			"--output-tokens", "fixed:" + strconv.Itoa(outputTokens)}
	})
	return c, "http://" + addr, err
}

// sidecars starts one `claudecap proxy` process per pod, as each pod's sidecar container.
type sidecars struct {
	lab          *lab
	logPath      string
	upstream     string
	organization string
	workload     string
	redisAddr    string

	mu     sync.Mutex
	procs  map[string]*child
	deaths []error
}

// start is the fleet's SidecarFunc.
func (s *sidecars) start(_ context.Context, pod string) (string, func(), error) {
	c, addr, err := startServing("proxy "+pod, s.logPath, nil, s.lab.cliBin, "/healthz", func(addr string) []string {
		return []string{"proxy", "--listen", addr, "--ops-listen", "", "--upstream", s.upstream,
			"--organization", s.organization, "--workload", s.workload, "--pod", pod,
			"--redis-addr", s.redisAddr, "--wait", "30s", "--log-level", "warn"}
	})
	if err != nil {
		return "", nil, err
	}
	s.mu.Lock()
	if s.procs == nil {
		s.procs = map[string]*child{}
	}
	s.procs[pod] = c
	s.mu.Unlock()
	stop := func() {
		c.stop(10 * time.Second)
		s.mu.Lock()
		delete(s.procs, pod)
		s.mu.Unlock()
	}
	return "http://" + addr, stop, nil
}

// died returns an error for every sidecar that exited without being stopped.
func (s *sidecars) died() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	var errs []error
	for pod, c := range s.procs {
		if err := c.died(); err != nil {
			errs = append(errs, err)
			delete(s.procs, pod)
		}
	}
	s.deaths = append(s.deaths, errs...)
	return errors.Join(s.deaths...)
}
