package queue

import (
	"errors"
	"fmt"
	"strings"
	"testing"
)

func TestSQSSettingsValidate(t *testing.T) {
	ok := SQSSettings{QueueURL: "https://sqs.eu-west-1.amazonaws.com/123456789012/jobs", Region: "eu-west-1",
		AccessKeyID: "AKID", SecretAccessKey: "secret"}
	tests := []struct {
		name    string
		edit    func(*SQSSettings)
		wantErr string
	}{
		{"aws", func(*SQSSettings) {}, ""},
		{"https endpoint", func(s *SQSSettings) { s.Endpoint = "https://sqs.internal.example:8443" }, ""},
		{"loopback v4", func(s *SQSSettings) { s.Endpoint = "http://127.0.0.1:9324" }, ""},
		{"loopback 127/8", func(s *SQSSettings) { s.Endpoint = "http://127.1.2.3:9324" }, ""},
		{"loopback v6", func(s *SQSSettings) { s.Endpoint = "http://[::1]:9324" }, ""},
		{"localhost", func(s *SQSSettings) { s.QueueURL, s.Endpoint = "http://localhost:9324/q/jobs", "http://localhost:9324" }, ""},
		{"plain http endpoint", func(s *SQSSettings) { s.Endpoint = "http://10.0.0.5:9324" }, "must use https"},
		{"metadata service", func(s *SQSSettings) { s.Endpoint = "http://169.254.169.254" }, "must use https"},
		{"host named like loopback", func(s *SQSSettings) { s.Endpoint = "http://127.0.0.1.evil.example" }, "must use https"},
		{"plain http queue", func(s *SQSSettings) { s.QueueURL = "http://sqs.example/1/jobs" }, "must use https"},
		{"other scheme", func(s *SQSSettings) { s.Endpoint = "file:///etc/passwd" }, "https"},
		{"no host", func(s *SQSSettings) { s.QueueURL = "https:///jobs" }, "needs a host"},
		{"user info", func(s *SQSSettings) { s.Endpoint = "https://u:p@sqs.example" }, "no user info"},
		{"not a URL", func(s *SQSSettings) { s.QueueURL = "://" }, "not a URL"},
		{"region with a dot", func(s *SQSSettings) { s.Region = "evil.example" }, "not an AWS region"},
		{"region with a slash", func(s *SQSSettings) { s.Region = "eu-west-1/x" }, "not an AWS region"},
		{"empty region", func(s *SQSSettings) { s.Region = "" }, "not an AWS region"},
		{"no secret key", func(s *SQSSettings) { s.SecretAccessKey = "" }, "secret access key"},
	}
	for _, tt := range tests {
		s := ok
		tt.edit(&s)
		err := s.validate()
		if tt.wantErr == "" && err != nil {
			t.Errorf("%s: unexpected error %v", tt.name, err)
		}
		if tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)) {
			t.Errorf("%s: error = %v, want one mentioning %q", tt.name, err, tt.wantErr)
		}
	}
}

func TestSQSSettingsNeverFormatTheCredentials(t *testing.T) {
	const secret, token = "wJalrXUtnFEMI-secret", "session-token-xyz"
	s := SQSSettings{QueueURL: "https://sqs.eu-west-1.amazonaws.com/1/jobs", Region: "eu-west-1",
		AccessKeyID: "AKID", SecretAccessKey: secret, SessionToken: token}
	for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%q"} {
		out := fmt.Sprintf(verb, s)
		if strings.Contains(out, secret) || strings.Contains(out, token) {
			t.Errorf("fmt %s printed a credential: %s", verb, out)
		}
		if !strings.Contains(out, "sqs.eu-west-1.amazonaws.com/1/jobs") {
			t.Errorf("fmt %s lost the queue: %s", verb, out)
		}
	}
}

func TestSQSSample(t *testing.T) {
	s, err := sqsSample(map[string]string{"ApproximateNumberOfMessages": "12", "ApproximateNumberOfMessagesNotVisible": "4"})
	if err != nil || s.Backlog != 12 || s.InFlight != 4 || s.CompletedKnown || s.BacklogSource != BacklogVisibleMessages {
		t.Fatalf("sqsSample = %+v, %v; want backlog 12, 4 in flight, visible messages, no completions", s, err)
	}
	for _, attrs := range []map[string]string{
		{"ApproximateNumberOfMessagesNotVisible": "4"},
		{"ApproximateNumberOfMessages": "12"},
		{"ApproximateNumberOfMessages": "many", "ApproximateNumberOfMessagesNotVisible": "4"},
		{"ApproximateNumberOfMessages": "-1", "ApproximateNumberOfMessagesNotVisible": "4"},
	} {
		if _, err := sqsSample(attrs); err == nil {
			t.Errorf("sqsSample(%v) accepted a reply without two counts", attrs)
		}
	}
}

func TestClassifySQSCode(t *testing.T) {
	tests := []struct {
		code   string
		status int
		want   error
	}{
		{"QueueDoesNotExist", 400, ErrQueueNotFound},
		{"AWS.SimpleQueueService.NonExistentQueue", 400, ErrQueueNotFound},
		{"InvalidClientTokenId", 403, ErrAuth},
		{"SignatureDoesNotMatch", 403, ErrAuth},
		{"AccessDenied", 403, ErrAuth},
		{"", 401, ErrAuth},
		{"RequestThrottled", 403, ErrUnavailable},
		{"", 503, ErrUnavailable},
		{"", 429, ErrUnavailable},
		{"InvalidAttributeName", 400, ErrBadReply},
		{"", 404, ErrBadReply},
		{"", 0, ErrUnavailable},
	}
	for _, tt := range tests {
		if got := classifySQSCode(tt.code, tt.status); !errors.Is(got, tt.want) {
			t.Errorf("classifySQSCode(%q, %d) = %v, want %v", tt.code, tt.status, got, tt.want)
		}
	}
}
