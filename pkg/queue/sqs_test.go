package queue_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/claudecap/claudecap/internal/testutil/sqstest"
	"github.com/claudecap/claudecap/pkg/queue"
)

// sqsSettings points at srv's queue with the credentials it accepts.
func sqsSettings(srv *sqstest.Server, queueURL string) queue.SQSSettings {
	return queue.SQSSettings{QueueURL: queueURL, Region: sqstest.Region, Endpoint: srv.Endpoint(),
		AccessKeyID: sqstest.AccessKeyID, SecretAccessKey: sqstest.SecretAccessKey}
}

func openSQS(t *testing.T, s queue.SQSSettings, env queue.Env) *queue.SQSSource {
	t.Helper()
	src, err := queue.OpenSQS(env, s)
	if err != nil {
		t.Fatalf("OpenSQS(%v): %v", s, err)
	}
	t.Cleanup(src.Close)
	return src
}

func TestSQSVisibleMessagesAreBacklogAndNotVisibleAreInFlight(t *testing.T) {
	ctx := context.Background()
	srv := sqstest.Start(t)
	q := srv.CreateQueue(t, "jobs")
	polled := time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)
	src := openSQS(t, sqsSettings(srv, q), queue.Env{Now: func() time.Time { return polled }})

	s, err := src.Poll(ctx)
	if err != nil || s.Backlog != 0 || s.InFlight != 0 {
		t.Fatalf("empty queue: %+v, %v; want 0 and 0", s, err)
	}
	srv.Send(t, q, 7)
	s, err = src.Poll(ctx)
	if err != nil {
		t.Fatalf("Poll: %v", err)
	}
	if s.Backlog != 7 || s.InFlight != 0 || s.BacklogSource != queue.BacklogVisibleMessages || s.CompletedKnown || !s.Time.Equal(polled) {
		t.Fatalf("7 sent: %+v; want backlog 7, nothing in flight, no completion counter, stamped %v", s, polled)
	}
	if got := srv.Receive(t, q, 3); got != 3 {
		t.Fatalf("received %d messages, want 3", got)
	}
	s, err = src.Poll(ctx)
	if err != nil {
		t.Fatalf("Poll: %v", err)
	}
	// goaws counts received messages in ApproximateNumberOfMessages too (SQS would say 4);
	// the source reports what the server says.
	if s.InFlight != 3 || s.Backlog != 7 {
		t.Fatalf("3 received: %+v; want 3 in flight (and goaws's backlog of 7)", s)
	}
}

func TestSQSMissingQueueIsQueueNotFound(t *testing.T) {
	srv := sqstest.Start(t)
	src := openSQS(t, sqsSettings(srv, srv.Endpoint()+"/queue/never-created"), queue.Env{})
	_, err := src.Poll(context.Background())
	if !errors.Is(err, queue.ErrQueueNotFound) || !strings.Contains(err.Error(), "never-created") {
		t.Fatalf("Poll = %v, want ErrQueueNotFound naming the queue", err)
	}
}

func TestSQSRefusedCredentialsAreAuthAndNeverInTheError(t *testing.T) {
	srv := sqstest.Start(t)
	q := srv.CreateQueue(t, "jobs")
	const secret = "wrong-secret-never-printed"
	s := sqsSettings(srv, q)
	s.AccessKeyID, s.SecretAccessKey = "AKIDSOMEONEELSE", secret
	_, err := openSQS(t, s, queue.Env{}).Poll(context.Background())
	if !errors.Is(err, queue.ErrAuth) {
		t.Fatalf("Poll with another access key = %v, want ErrAuth", err)
	}
	if strings.Contains(err.Error(), secret) {
		t.Fatalf("the error holds the secret access key: %v", err)
	}

	wrongRegion := sqsSettings(srv, q)
	wrongRegion.Region = "eu-west-1"
	if _, err := openSQS(t, wrongRegion, queue.Env{}).Poll(context.Background()); !errors.Is(err, queue.ErrAuth) {
		t.Fatalf("Poll signed for another region = %v, want ErrAuth", err)
	}
}

func TestSQSStoppedServerIsUnavailableWithinTheTimeout(t *testing.T) {
	srv := sqstest.Start(t)
	q := srv.CreateQueue(t, "jobs")
	src := openSQS(t, sqsSettings(srv, q), queue.Env{Timeout: 300 * time.Millisecond})
	if _, err := src.Poll(context.Background()); err != nil {
		t.Fatalf("Poll before Stop: %v", err)
	}
	srv.Stop()
	start := time.Now()
	_, err := src.Poll(context.Background())
	if !errors.Is(err, queue.ErrUnavailable) {
		t.Fatalf("Poll on a stopped server = %v, want ErrUnavailable", err)
	}
	if took := time.Since(start); took > 2*time.Second {
		t.Fatalf("a failed poll took %v", took)
	}
}

func TestOpenSQSRefusesPlainHTTPOffLoopback(t *testing.T) {
	s := queue.SQSSettings{QueueURL: "https://sqs.eu-west-1.amazonaws.com/1/jobs", Region: "eu-west-1",
		Endpoint: "http://10.0.0.5:9324", AccessKeyID: "a", SecretAccessKey: "b"}
	if _, err := queue.OpenSQS(queue.Env{}, s); !errors.Is(err, queue.ErrInvalid) || !strings.Contains(err.Error(), "https") {
		t.Fatalf("OpenSQS with a plain-http endpoint off loopback = %v, want ErrInvalid asking for https", err)
	}
}
