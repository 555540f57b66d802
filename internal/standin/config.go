package standin

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/redis/go-redis/v9"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// Defaults for Config.
const (
	// DefaultStartDelay is how long a pod is Starting: image pull, container start and a
	// readiness probe take seconds in a cluster, and the operator must live with that lag.
	DefaultStartDelay = 5 * time.Second
	// DefaultGracePeriod is Kubernetes' terminationGracePeriodSeconds default.
	DefaultGracePeriod = 30 * time.Second
	// DefaultPollInterval is how often the fleet reads the Deployment.
	DefaultPollInterval = 250 * time.Millisecond
	// DefaultFailureBackoff is how long a worker waits after a failed call.
	DefaultFailureBackoff = time.Second
	// DefaultList and DefaultProcessingList are the queue of the summarizer sample.
	DefaultList           = "jobs"
	DefaultProcessingList = "jobs:processing"
	// DefaultStreamField is the stream entry field that holds a job's payload.
	DefaultStreamField = "job"
	// DefaultModel is the sample's model.
	DefaultModel = "claude-sonnet-4-5"
	// DefaultMaxTokens is each call's max_tokens.
	DefaultMaxTokens = 1024
	// DefaultInputTokens is each prompt's size as the mock counts it.
	DefaultInputTokens = 1000
	// DefaultAPIKey is what workers send to their sidecar. It is no real key: a sidecar
	// that talks to the real API injects its own.
	DefaultAPIKey = "standin-worker"
)

// SidecarFunc starts the sidecar of one pod and returns the base URL the pod's worker calls
// the Messages API at, and how to stop the sidecar. ctx ends after stop has been called.
type SidecarFunc func(ctx context.Context, pod string) (baseURL string, stop func(), err error)

// Config configures a Fleet. Zero durations and empty strings take their defaults.
type Config struct {
	// Client reads the Deployment and writes its status (with FollowPods: reads the
	// Deployment and lists its Pods). Required.
	Client client.Client
	// Namespace of the Deployment. Required.
	Namespace string
	// Deployment is the name of the Deployment whose pods the fleet plays. Required.
	Deployment string
	// Redis holds the queue. Every Ready pod keeps one connection blocked in BLMOVE or
	// XREADGROUP for up to a second, so its pool should be larger than the most pods the
	// Deployment will have. Required.
	Redis redis.UniversalClient
	// Sidecar starts each pod's sidecar when the pod is created. Required.
	Sidecar SidecarFunc
	// FollowPods plays the Deployment's real Pods instead of simulating them, for a
	// cluster whose controller-manager makes them (internal/localcluster, with KWOK's
	// fake nodes, where no container runs): every Pod the Deployment's selector matches
	// gets a pod with its own sidecar when first seen, its worker starts when the Pod is
	// Ready, and it is terminated when the Pod gets a deletionTimestamp, with the Pod's
	// own grace period (it ends at the deletionTimestamp). The fleet never writes the
	// Deployment's status then; StartDelay and GracePeriod do not apply.
	FollowPods bool
	// StartDelay is how long a pod is Starting before it is Ready (default
	// DefaultStartDelay; negative: Ready as soon as its sidecar is up).
	StartDelay time.Duration
	// GracePeriod is how long a Terminating pod may take to finish its job before the
	// job is cancelled and requeued (default DefaultGracePeriod; negative: at once).
	GracePeriod time.Duration
	// PollInterval is how often the Deployment (with FollowPods, also its Pods) is read
	// (default DefaultPollInterval).
	PollInterval time.Duration
	// FailureBackoff is a worker's pause after a failed call (default DefaultFailureBackoff).
	FailureBackoff time.Duration
	// ThinkTime is spent on every job before its call, modeling workers slower than the
	// API (default 0). A job cancelled while thinking goes back to the queue uncalled.
	ThinkTime time.Duration
	// Queue is where jobs come from.
	Queue Queue
	// Request is the shape of every call.
	Request Request
	// APIKey is sent to the sidecar as x-api-key (default DefaultAPIKey). Never logged.
	APIKey string
	// Logger receives pod lifecycle lines (info) and problems (warn). Default slog.Default().
	Logger *slog.Logger
}

// Queue names the Redis queue: a list with its processing list (the default), or a stream
// with a consumer group when Stream is set.
type Queue struct {
	// List is the list jobs are taken from (default DefaultList unless Stream is set).
	List string
	// ProcessingList holds jobs being worked on (default DefaultProcessingList unless
	// Stream is set).
	ProcessingList string
	// Stream is the stream jobs are read from; set it (with Group) instead of List.
	Stream string
	// Group is the stream's consumer group; pods read as consumers named after
	// themselves. The fleet creates the group at the stream's start when it is missing,
	// as workers do.
	Group string
	// Field is the entry field holding the job's payload (default DefaultStreamField);
	// an entry without it is known by its ID.
	Field string
}

// Request is the shape of every Messages API call.
type Request struct {
	// Model is the model (default DefaultModel).
	Model string
	// MaxTokens is max_tokens (default DefaultMaxTokens).
	MaxTokens int64
	// InputTokens is the prompt's size as pkg/mockapi counts tokens (4 bytes of text per
	// token plus 3 per message); a job's own line may make it larger. Default
	// DefaultInputTokens.
	InputTokens int
	// Stream makes streaming calls.
	Stream bool
}

// withDefaults validates c and fills unset fields.
func (c Config) withDefaults() (Config, error) {
	if err := c.validate(); err != nil {
		return c, fmt.Errorf("standin config: %w", err)
	}
	c.StartDelay = durationOr(c.StartDelay, DefaultStartDelay)
	c.GracePeriod = durationOr(c.GracePeriod, DefaultGracePeriod)
	c.PollInterval = durationOr(c.PollInterval, DefaultPollInterval)
	c.FailureBackoff = durationOr(c.FailureBackoff, DefaultFailureBackoff)
	if c.Queue.Stream == "" {
		c.Queue.List = stringOr(c.Queue.List, DefaultList)
		c.Queue.ProcessingList = stringOr(c.Queue.ProcessingList, DefaultProcessingList)
		if c.Queue.List == c.Queue.ProcessingList {
			return c, fmt.Errorf("standin config: Queue.List and Queue.ProcessingList are both %q", c.Queue.List)
		}
	} else {
		c.Queue.Field = stringOr(c.Queue.Field, DefaultStreamField)
	}
	c.Request.Model = stringOr(c.Request.Model, DefaultModel)
	if c.Request.MaxTokens == 0 {
		c.Request.MaxTokens = DefaultMaxTokens
	}
	if c.Request.InputTokens == 0 {
		c.Request.InputTokens = DefaultInputTokens
	}
	c.APIKey = stringOr(c.APIKey, DefaultAPIKey)
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	return c, nil
}

func (c Config) validate() error {
	switch {
	case c.Client == nil:
		return errors.New("missing Client")
	case c.Namespace == "" || c.Deployment == "":
		return errors.New("missing Namespace or Deployment")
	case c.Redis == nil:
		return errors.New("missing Redis")
	case c.Sidecar == nil:
		return errors.New("missing Sidecar")
	case c.PollInterval < 0 || c.FailureBackoff < 0 || c.ThinkTime < 0:
		return errors.New("PollInterval, FailureBackoff and ThinkTime must not be negative")
	case c.Request.MaxTokens < 0 || c.Request.InputTokens < 0:
		return errors.New("Request.MaxTokens and Request.InputTokens must not be negative")
	}
	return c.Queue.validate()
}

func (q Queue) validate() error {
	switch {
	case q.Stream == "" && q.Group != "":
		return fmt.Errorf("Queue.Group %q needs Queue.Stream", q.Group)
	case q.Stream != "" && q.Group == "":
		return fmt.Errorf("Queue.Stream %q needs Queue.Group", q.Stream)
	case q.Stream != "" && (q.List != "" || q.ProcessingList != ""):
		return errors.New("set either Queue.Stream and Queue.Group or Queue.List and Queue.ProcessingList, not both")
	case q.Stream == "" && q.Field != "":
		return errors.New("Queue.Field applies to streams only")
	}
	return nil
}

// durationOr turns 0 into the default and a negative duration into 0.
func durationOr(d, def time.Duration) time.Duration {
	switch {
	case d == 0:
		return def
	case d < 0:
		return 0
	}
	return d
}

func stringOr(s, def string) string {
	if s == "" {
		return def
	}
	return s
}
