package proxy

import (
	"context"
	"sync"
	"sync/atomic"
	"time"
)

// background runs the work that follows a response (settling, publishing
// upstream state) off the request's path, so the client's response ends
// without waiting for Redis. At most cap(slots) jobs run at once; beyond that
// a job runs on the request's own goroutine, which slows that client rather
// than piling up goroutines.
type background struct {
	slots chan struct{}

	mu   sync.Mutex
	n    int
	idle chan struct{} // closed when n drops to zero
}

func newBackground(concurrency int) *background {
	return &background{slots: make(chan struct{}, concurrency)}
}

// hold counts work that will start later (an admitted call that will be
// finished), so wait also covers calls still in flight. Release it with done.
func (b *background) hold() {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.n == 0 {
		b.idle = make(chan struct{})
	}
	b.n++
}

func (b *background) run(job func()) {
	b.hold()
	select {
	case b.slots <- struct{}{}:
		go func() {
			defer b.done()
			defer func() { <-b.slots }()
			job()
		}()
	default:
		defer b.done()
		job()
	}
}

func (b *background) done() {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.n--
	if b.n == 0 {
		close(b.idle)
	}
}

// wait returns once every job started so far has finished, or ctx ends.
func (b *background) wait(ctx context.Context) error {
	b.mu.Lock()
	if b.n == 0 {
		b.mu.Unlock()
		return nil
	}
	idle := b.idle
	b.mu.Unlock()
	select {
	case <-idle:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// publishThrottle limits upstream header publication to one per class per
// interval.
type publishThrottle struct {
	interval time.Duration
	last     sync.Map // class -> *atomic.Int64 (Unix nanoseconds)
}

// due reports whether a publication for class is due at now, and claims it.
func (t *publishThrottle) due(class string, now time.Time) bool {
	if t.interval < 0 {
		return true
	}
	v, _ := t.last.LoadOrStore(class, new(atomic.Int64))
	last := v.(*atomic.Int64) //nolint:forcetypeassert // the map only holds *atomic.Int64.
	prev := last.Load()
	if prev != 0 && now.UnixNano()-prev < int64(t.interval) {
		return false
	}
	return last.CompareAndSwap(prev, now.UnixNano())
}
