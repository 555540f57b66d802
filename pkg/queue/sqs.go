package queue

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/aws-sdk-go-v2/service/sqs/types"
	"github.com/aws/smithy-go"

	capacityv1alpha1 "github.com/claudecap/claudecap/api/v1alpha1"
	"github.com/claudecap/claudecap/pkg/capacity"
)

// Where an SQS queue's backlog came from.
const (
	// BacklogVisibleMessages is ApproximateNumberOfMessages: the messages
	// available for retrieval. SQS says "approximate": it settles within about
	// a minute of a change, which the controller's stabilization absorbs.
	BacklogVisibleMessages BacklogSource = "VisibleMessages"
)

// SQSSettings are an SQS queue with its credentials already read. Its String
// and GoString leave the credentials out, so printing it with any fmt verb is
// safe.
type SQSSettings struct {
	// QueueURL is the queue's URL.
	QueueURL string
	// Region signs the requests and picks the endpoint when Endpoint is empty.
	Region string
	// Endpoint overrides the regional SQS endpoint; empty for AWS's own.
	Endpoint string
	// AccessKeyID, SecretAccessKey and SessionToken (optional) are the
	// workload's AWS credentials.
	AccessKeyID, SecretAccessKey, SessionToken string
}

// String names the queue and, when overridden, the endpoint.
func (s SQSSettings) String() string {
	if s.Endpoint != "" {
		return fmt.Sprintf("SQS queue %s (endpoint %s)", s.QueueURL, s.Endpoint)
	}
	return fmt.Sprintf("SQS queue %s (%s)", s.QueueURL, s.Region)
}

// GoString keeps %#v from printing the credentials.
func (s SQSSettings) GoString() string {
	return "queue.SQSSettings{" + s.String() + "}"
}

// server is where requests go, for errors.
func (s SQSSettings) server() string {
	if s.Endpoint != "" {
		return s.Endpoint
	}
	return "SQS " + s.Region
}

// awsRegion is what the API allows for a region; it keeps the regional
// endpoint's host name under amazonaws.com.
var awsRegion = regexp.MustCompile(`^[a-z0-9]+(-[a-z0-9]+)*$`)

// validate refuses settings the controller must not act on. The API server's
// CEL rules say the same; this holds for objects that bypassed them.
func (s SQSSettings) validate() error {
	if err := checkURL("queueURL", s.QueueURL); err != nil {
		return err
	}
	if s.Endpoint != "" {
		if err := checkURL("endpoint", s.Endpoint); err != nil {
			return err
		}
	}
	if len(s.Region) > 32 || !awsRegion.MatchString(s.Region) {
		return fmt.Errorf("region %q is not an AWS region name (lower-case letters, digits and dashes)", s.Region)
	}
	if s.AccessKeyID == "" || s.SecretAccessKey == "" {
		return errors.New("the credentials need an access key id and a secret access key")
	}
	return nil
}

// checkURL allows https anywhere and plain http only on loopback: the
// controller sends signed requests from inside the cluster, and a tenant must
// not aim it at an internal plain-http service (an SSRF). Redirects are not
// followed either (see newSQSHTTPClient).
func checkURL(field, raw string) error {
	u, err := url.Parse(raw)
	if err != nil {
		return fmt.Errorf("%s %q is not a URL", field, raw)
	}
	if u.Scheme != "https" && u.Scheme != "http" {
		return fmt.Errorf("%s %q must be an https URL", field, raw)
	}
	if u.Host == "" || u.User != nil {
		return fmt.Errorf("%s %q needs a host and no user info", field, raw)
	}
	if u.Scheme == "http" && !isLoopback(u.Hostname()) {
		return fmt.Errorf("%s %q must use https: plain http is allowed only on loopback (127.0.0.1, ::1, localhost)", field, raw)
	}
	return nil
}

func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// resolveSQS reads spec.queue.sqs, the credentials from their labelled Secret.
func resolveSQS(ctx context.Context, spec *capacityv1alpha1.Queue, creds Credentials) (Settings, error) {
	q := spec.SQS
	name := q.CredentialsSecretRef.Name
	value := func(key string, required bool) (string, error) {
		v, found, err := creds.Value(ctx, capacityv1alpha1.LabelSQSCredentials, name, key)
		switch {
		case err != nil:
			return "", fmt.Errorf("reading the SQS credentials: %w", err)
		case !found && required:
			return "", fmt.Errorf("%w: secret %s has no key %s", ErrCredentials, name, key)
		}
		return v, nil
	}
	s := SQSSettings{QueueURL: q.QueueURL, Region: q.Region, Endpoint: q.Endpoint}
	var err error
	if s.AccessKeyID, err = value(capacityv1alpha1.SQSAccessKeyIDKey, true); err != nil {
		return nil, err
	}
	if s.SecretAccessKey, err = value(capacityv1alpha1.SQSSecretAccessKeyKey, true); err != nil {
		return nil, err
	}
	if s.SessionToken, err = value(capacityv1alpha1.SQSSessionTokenKey, false); err != nil {
		return nil, err
	}
	return s, nil
}

// Open builds the source's own SQS client.
func (s SQSSettings) Open(env Env) (Source, error) {
	return OpenSQS(env, s)
}

// SQSSource polls an SQS queue with one GetQueueAttributes call: visible
// messages are the backlog, not-visible ones (received, not yet deleted) are
// in flight. SQS keeps no completion counter. Each source has its own client
// and connections, closed with it.
type SQSSource struct {
	settings  SQSSettings
	client    *sqs.Client
	transport *http.Transport
	timeout   time.Duration
	now       func() time.Time
}

// OpenSQS validates the settings and builds a client for them. It does not
// reach the server.
func OpenSQS(env Env, s SQSSettings) (*SQSSource, error) {
	if err := s.validate(); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	env = env.withDefaults()
	httpClient, transport := newSQSHTTPClient(env.Timeout)
	creds := aws.Credentials{AccessKeyID: s.AccessKeyID, SecretAccessKey: s.SecretAccessKey, SessionToken: s.SessionToken,
		Source: "ClaudeCapacity credentialsSecretRef"}
	opts := sqs.Options{
		Region: s.Region,
		Credentials: aws.CredentialsProviderFunc(func(context.Context) (aws.Credentials, error) {
			return creds, nil
		}),
		HTTPClient: httpClient,
		// One retry covers a connection that died with a restarted server;
		// more would only stretch a failing poll toward its deadline.
		RetryMaxAttempts: 2,
	}
	if s.Endpoint != "" {
		opts.BaseEndpoint = aws.String(s.Endpoint)
	}
	return &SQSSource{settings: s, client: sqs.New(opts), transport: transport, timeout: env.Timeout, now: env.Now}, nil
}

// newSQSHTTPClient is a client of its own that never follows a redirect (a
// redirect could lead the https-only rule to an internal plain-http address)
// and bounds every request.
func newSQSHTTPClient(timeout time.Duration) (*http.Client, *http.Transport) {
	transport := http.DefaultTransport.(*http.Transport).Clone()
	transport.MaxIdleConnsPerHost = 2
	transport.IdleConnTimeout = time.Minute
	transport.ResponseHeaderTimeout = timeout
	return &http.Client{
		Transport: transport,
		Timeout:   timeout,
		CheckRedirect: func(*http.Request, []*http.Request) error {
			return http.ErrUseLastResponse
		},
	}, transport
}

// Close drops the source's idle connections. It is idempotent.
func (q *SQSSource) Close() {
	q.transport.CloseIdleConnections()
}

// Poll reads the queue's visible and not-visible message counts. Errors wrap
// one of ErrUnavailable, ErrAuth, ErrQueueNotFound or ErrBadReply and never
// hold a credential (requests are signed; the secret key is never sent).
func (q *SQSSource) Poll(ctx context.Context) (Sample, error) {
	ctx, cancel := context.WithTimeout(ctx, q.timeout)
	defer cancel()
	out, err := q.client.GetQueueAttributes(ctx, &sqs.GetQueueAttributesInput{
		QueueUrl: aws.String(q.settings.QueueURL),
		AttributeNames: []types.QueueAttributeName{
			types.QueueAttributeNameApproximateNumberOfMessages,
			types.QueueAttributeNameApproximateNumberOfMessagesNotVisible,
		},
	})
	if err != nil {
		return Sample{}, pollError(sqsQueue(q.settings.QueueURL), q.settings.server(), classifySQS(err), err)
	}
	s, err := sqsSample(out.Attributes)
	if err != nil {
		return Sample{}, pollError(sqsQueue(q.settings.QueueURL), q.settings.server(), ErrBadReply, err)
	}
	s.Time = q.now()
	return s, nil
}

// sqsQueue names an SQS queue in errors.
type sqsQueue string

func (q sqsQueue) String() string { return "SQS queue " + string(q) }

// sqsSample reads the two counts from GetQueueAttributes' reply.
func sqsSample(attrs map[string]string) (Sample, error) {
	count := func(name types.QueueAttributeName) (int64, error) {
		v, ok := attrs[string(name)]
		if !ok {
			return 0, fmt.Errorf("the reply has no %s", name)
		}
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n < 0 {
			return 0, fmt.Errorf("%s is %q, not a count", name, v)
		}
		return n, nil
	}
	visible, err := count(types.QueueAttributeNameApproximateNumberOfMessages)
	if err != nil {
		return Sample{}, err
	}
	notVisible, err := count(types.QueueAttributeNameApproximateNumberOfMessagesNotVisible)
	if err != nil {
		return Sample{}, err
	}
	return Sample{
		QueueSample:   capacity.QueueSample{Backlog: visible, InFlight: notVisible},
		BacklogSource: BacklogVisibleMessages,
	}, nil
}

// classifySQS maps an SDK error to a kind of failure. Errors without an answer
// from the server (dial, timeouts, a closed connection) mean it is unavailable.
func classifySQS(err error) error {
	var (
		notFound *types.QueueDoesNotExist
		apiErr   smithy.APIError
		resp     *awshttp.ResponseError
		deser    *smithy.DeserializationError
	)
	switch {
	case errors.As(err, &notFound):
		return ErrQueueNotFound
	case errors.As(err, &apiErr):
		return classifySQSCode(apiErr.ErrorCode(), statusOf(err))
	case errors.As(err, &deser):
		return ErrBadReply
	case errors.As(err, &resp):
		return classifySQSCode("", resp.HTTPStatusCode())
	default:
		return ErrUnavailable
	}
}

func statusOf(err error) int {
	var resp *awshttp.ResponseError
	if errors.As(err, &resp) {
		return resp.HTTPStatusCode()
	}
	return 0
}

// classifySQSCode maps an error code (query-protocol names included) and the
// HTTP status to a kind of failure.
func classifySQSCode(code string, status int) error {
	switch code {
	case "QueueDoesNotExist", "AWS.SimpleQueueService.NonExistentQueue":
		return ErrQueueNotFound
	case "InvalidClientTokenId", "SignatureDoesNotMatch", "AccessDenied", "AccessDeniedException",
		"UnrecognizedClientException", "InvalidSecurity", "ExpiredToken", "MissingAuthenticationToken",
		"IncompleteSignature":
		return ErrAuth
	case "RequestThrottled", "ThrottlingException", "ServiceUnavailable", "InternalError", "InternalFailure":
		return ErrUnavailable
	}
	switch {
	case status == 0: // no response: the request was never answered
		return ErrUnavailable
	case status == http.StatusUnauthorized || status == http.StatusForbidden:
		return ErrAuth
	case status == http.StatusTooManyRequests || status >= 500:
		return ErrUnavailable
	default:
		return ErrBadReply
	}
}
