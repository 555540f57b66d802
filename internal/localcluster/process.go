package localcluster

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"syscall"
	"time"

	"k8s.io/apimachinery/pkg/util/wait"
)

// process is a component that Start runs itself (not envtest's etcd and kube-apiserver).
type process struct {
	name      string
	cmd       *exec.Cmd
	log       *os.File
	healthURL string
	done      chan struct{} // closed when the process has exited
}

const stopTimeout = 10 * time.Second

func startProcess(name, path string, args []string, log *os.File, healthURL string) (*process, error) {
	cmd := exec.Command(path, args...)
	cmd.Stdout, cmd.Stderr = log, log
	cmd.SysProcAttr = &syscall.SysProcAttr{
		Setpgid: true, // stop signals reach the whole group
		// If the test binary dies without Stop, the component dies with it.
		Pdeathsig: syscall.SIGKILL,
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting %s: %w", name, err)
	}
	p := &process{name: name, cmd: cmd, log: log, healthURL: healthURL, done: make(chan struct{})}
	go func() {
		_ = cmd.Wait() // the exit status is in cmd.ProcessState
		close(p.done)
	}()
	return p, nil
}

func (p *process) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// waitHealthy polls the process's /healthz until it answers 200 OK.
func (p *process) waitHealthy(ctx context.Context, timeout time.Duration) error {
	var last string
	err := wait.PollUntilContextTimeout(ctx, 200*time.Millisecond, timeout, true, func(ctx context.Context) (bool, error) {
		if p.exited() {
			return false, fmt.Errorf("%s exited early (%s); see %s", p.name, p.cmd.ProcessState, p.log.Name())
		}
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, p.healthURL, nil)
		if err != nil {
			return false, err
		}
		resp, err := healthClient.Do(req)
		if err != nil {
			last = err.Error()
			return false, nil
		}
		_ = resp.Body.Close()
		last = resp.Status
		return resp.StatusCode == http.StatusOK, nil
	})
	if err != nil {
		return fmt.Errorf("waiting for %s to be healthy at %s (last: %s): %w", p.name, p.healthURL, last, err)
	}
	return nil
}

// stop sends SIGTERM to the process group, then SIGKILL after stopTimeout, and waits.
func (p *process) stop() error {
	defer func() { _ = p.log.Close() }()
	if p.exited() {
		return nil
	}
	pgid := -p.cmd.Process.Pid
	_ = syscall.Kill(pgid, syscall.SIGTERM)
	select {
	case <-p.done:
		return nil
	case <-time.After(stopTimeout):
	}
	_ = syscall.Kill(pgid, syscall.SIGKILL)
	select {
	case <-p.done:
		return fmt.Errorf("%s did not stop within %s of SIGTERM; killed", p.name, stopTimeout)
	case <-time.After(stopTimeout):
		return errors.New(p.name + " survived SIGKILL")
	}
}
