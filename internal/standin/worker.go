package standin

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"sync/atomic"
	"time"

	"github.com/anthropics/anthropic-sdk-go/v2"
	"github.com/anthropics/anthropic-sdk-go/v2/option"
)

// sidecarRetry is how long a pod waits before starting a failed sidecar again, as the
// kubelet restarts a crashed container.
const sidecarRetry = time.Second

// ackAttempts bounds retries of an acknowledgement after a Redis error: a job that was
// called successfully must not be worked again, so giving up after one error is too soon.
const ackAttempts = 3

// errStreamTruncated marks a stream that ended without message_stop.
var errStreamTruncated = errors.New("stream ended before message_stop")

// errNotInCustody means the job was no longer in the processing list or pending: someone
// else acknowledged or moved it.
var errNotInCustody = errors.New("the job is no longer in this worker's custody")

// runPod is a pod's whole life: sidecar, start delay (or the real Pod's readiness), worker,
// exit. Only a terminated pod exits; every wait here ends early when the pod is told to stop.
func (f *Fleet) runPod(p *pod) {
	defer close(p.done)
	defer f.log.Info("pod exited", "pod", p.name)
	defer p.release()
	life, endLife := context.WithCancel(f.base)
	defer endLife()
	baseURL, stopSidecar, ok := f.startSidecar(life, p)
	if !ok {
		return
	}
	defer stopSidecar()
	if !f.waitStarted(p) || !p.becomeReady() {
		return
	}
	f.log.Info("pod ready", "pod", p.name)
	f.work(p, baseURL)
}

// waitStarted waits until the pod's containers are up: for Config.StartDelay after the pod
// was created, or with Config.FollowPods until the real Pod is Ready. It reports false when
// the pod was told to stop first.
func (f *Fleet) waitStarted(p *pod) bool {
	if p.kubeReady == nil {
		return p.pause(time.Until(p.created.Add(f.cfg.StartDelay)))
	}
	select {
	case <-p.kubeReady:
		return !p.isStopping()
	case <-p.stopping:
		return false
	}
}

// startSidecar starts the pod's sidecar, retrying until it starts or the pod stops.
func (f *Fleet) startSidecar(ctx context.Context, p *pod) (string, func(), bool) {
	for {
		baseURL, stop, err := f.cfg.Sidecar(ctx, p.name)
		if err == nil {
			if stop == nil {
				stop = func() {}
			}
			if p.isStopping() {
				stop()
				return "", nil, false
			}
			return baseURL, stop, true
		}
		f.stats.sidecarFailures.Add(1)
		f.log.Warn("sidecar did not start; retrying", "pod", p.name, "error", err)
		if !p.pause(sidecarRetry) {
			return "", nil, false
		}
	}
}

// work is the worker of a Ready pod: take a job, work it, until the pod stops.
func (f *Fleet) work(p *pod, baseURL string) {
	sdk := anthropic.NewClient(option.WithoutEnvironmentDefaults(), option.WithBaseURL(baseURL),
		option.WithAPIKey(f.cfg.APIKey), option.WithMaxRetries(0))
	// Taking is never cancelled: a BLMOVE or XREADGROUP abandoned mid-reply would leave a
	// job in custody that no worker knows about.
	takeCtx := context.WithoutCancel(p.work)
	for !p.isStopping() {
		j, ok, err := f.queue.take(takeCtx, p.name)
		switch {
		case err != nil:
			f.log.Warn("taking a job failed", "pod", p.name, "error", err)
			p.pause(f.cfg.FailureBackoff)
		case !ok:
		case p.isStopping():
			f.handBack(p, j)
		default:
			f.process(p, sdk, j)
		}
	}
}

// process works one job: think, call, acknowledge; a job whose call failed or was
// cancelled goes back to the queue.
func (f *Fleet) process(p *pod, sdk anthropic.Client, j job) {
	if !f.think(p) {
		f.requeue(p, j)
		return
	}
	if err := f.call(p.work, sdk, j); err != nil {
		f.countFailedCall(p, err)
		f.requeue(p, j)
		p.pause(f.cfg.FailureBackoff)
		return
	}
	f.stats.callsOK.Add(1)
	f.acknowledge(p, j)
}

// think spends ThinkTime on the job; it reports false when the grace period ran out.
func (f *Fleet) think(p *pod) bool {
	if f.cfg.ThinkTime <= 0 {
		return true
	}
	t := time.NewTimer(f.cfg.ThinkTime)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-p.work.Done():
		return false
	}
}

// call makes the job's Messages API call through the pod's sidecar.
func (f *Fleet) call(ctx context.Context, sdk anthropic.Client, j job) error {
	params := anthropic.MessageNewParams{
		Model:     f.cfg.Request.Model,
		MaxTokens: f.cfg.Request.MaxTokens,
		Messages:  []anthropic.MessageParam{anthropic.NewUserMessage(anthropic.NewTextBlock(f.prompt(j.payload)))},
	}
	if !f.cfg.Request.Stream {
		_, err := sdk.Messages.New(ctx, params)
		return err
	}
	stream := sdk.Messages.NewStreaming(ctx, params)
	defer func() { _ = stream.Close() }() // read to the end or abandoned; nothing to report
	stopped := false
	for stream.Next() {
		stopped = stopped || stream.Current().Type == "message_stop"
	}
	if err := stream.Err(); err != nil {
		return err
	}
	if !stopped {
		return errStreamTruncated
	}
	return nil
}

// prompt is the job's line padded to about Request.InputTokens as pkg/mockapi counts
// them: ceil(bytes / 4) for the text plus 3 for the message.
func (f *Fleet) prompt(payload string) string {
	head := "Summarize job " + payload + ".\n"
	if pad := len(f.filler) - len(head); pad > 0 {
		return head + f.filler[:pad]
	}
	return head
}

// fillerFor is text of the length that makes a one-message prompt inputTokens long.
func fillerFor(inputTokens int) string {
	const words = "lorem ipsum dolor sit amet "
	n := max(0, (inputTokens-3)*4)
	return strings.Repeat(words, n/len(words)+1)[:n]
}

func (f *Fleet) countFailedCall(p *pod, err error) {
	var apiErr *anthropic.Error
	if errors.As(err, &apiErr) && apiErr.StatusCode == http.StatusTooManyRequests {
		f.stats.callsRateLimited.Add(1)
	} else {
		f.stats.callsFailed.Add(1)
	}
	// Debug: a rate-limited fleet fails many calls a second, and the counters tell it.
	f.log.Debug("call failed; requeueing the job", "pod", p.name, "error", err)
}

// requeue puts a job the pod will not finish back on the queue.
func (f *Fleet) requeue(p *pod, j job) { f.putBack(p, j, &f.stats.jobsRequeued) }

// handBack returns a job taken after the pod was told to stop, unworked.
func (f *Fleet) handBack(p *pod, j job) { f.putBack(p, j, &f.stats.jobsHandedBack) }

// putBack is never cancelled: a job left in custody would be lost to every worker.
func (f *Fleet) putBack(p *pod, j job, counter *atomic.Int64) {
	ok, err := f.queue.requeue(context.WithoutCancel(p.work), j)
	if err == nil && !ok {
		err = errNotInCustody
	}
	if err != nil {
		f.stats.queueErrors.Add(1)
		f.log.Warn("putting a job back on the queue failed", "pod", p.name, "job", j.payload, "error", err)
		return
	}
	counter.Add(1)
}

// acknowledge ends the custody of a job whose call succeeded. It is never cancelled: the
// call has been paid for, so the job must not be worked again. An attempt that failed
// (a timeout) may still have landed: Redis can run it after the client gave up. So when
// a retry finds the job gone after such a failure, the earlier attempt acknowledged it.
func (f *Fleet) acknowledge(p *pod, j job) {
	ctx := context.WithoutCancel(p.work)
	uncertain := false
	for attempt := 1; ; attempt++ {
		ok, err := f.queue.ack(ctx, j)
		switch {
		case err == nil && (ok || uncertain):
			f.stats.recordAck(j.payload)
			p.completed.Add(1)
			return
		case err == nil || attempt == ackAttempts:
			if err == nil {
				err = errNotInCustody
			}
			f.stats.queueErrors.Add(1)
			f.log.Warn("acknowledging a job failed", "pod", p.name, "job", j.payload, "error", err)
			return
		}
		uncertain = true
		time.Sleep(100 * time.Millisecond)
	}
}
