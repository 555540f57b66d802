// Package sqstest runs a real SQS-compatible server, goaws
// (github.com/Admiral-Piett/goaws, built from the Go module proxy like any
// dependency), in the test's process on a free loopback port.
//
// goaws v0.4.5, its newest release, speaks SQS's query protocol only, while the
// AWS SDK for Go v2 speaks AWS JSON 1.0 (service/sqs since v1.28). The server
// therefore answers the one call the operator makes, GetQueueAttributes, in
// JSON by translating it to goaws and back; the queue's state, visibility
// timeouts and counts are goaws's own. It also checks the SigV4 Authorization
// header names the server's access key id and region (goaws checks no
// credentials), so a test sees credentials and region reach the request.
// Tests fill and drain queues through goaws's own query protocol
// ([Server.CreateQueue], [Server.Send], [Server.Receive]).
//
// goaws keeps its queues in package globals, so every Server of a process
// shares them; CreateQueue makes each name unique.
package sqstest

import (
	"encoding/json"
	"encoding/xml"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/Admiral-Piett/goaws/app"
	"github.com/Admiral-Piett/goaws/app/gosqs"
	"github.com/Admiral-Piett/goaws/app/router"
	"github.com/sirupsen/logrus"
)

// Credentials and region the server accepts.
const (
	AccessKeyID     = "AKIDSQSTEST"
	SecretAccessKey = "sqstest-secret-access-key"
	Region          = "us-east-1"
	// VisibilityTimeout is how long a received message stays in flight.
	VisibilityTimeout = 5 * time.Minute
)

// Query-protocol form fields.
const (
	fieldAction   = "Action"
	fieldVersion  = "Version"
	fieldQueueURL = "QueueUrl"
	apiVersion    = "2012-11-05"
)

var (
	setup    sync.Once
	queueSeq atomic.Int64
)

// Server is one goaws instance's HTTP face on 127.0.0.1.
type Server struct {
	http   *httptest.Server
	goaws  http.Handler
	closed atomic.Bool
}

// Start runs a server until the test ends (or Stop).
func Start(tb testing.TB) *Server {
	tb.Helper()
	setup.Do(func() {
		logrus.SetOutput(io.Discard)
		app.CurrentEnvironment = app.Environment{
			Host: "127.0.0.1", AccountID: "100010001000",
			QueueAttributeDefaults: app.EnvQueueAttributes{VisibilityTimeout: int(VisibilityTimeout / time.Second)},
		}
		// Makes timed-out in-flight messages visible again, as SQS does.
		go gosqs.PeriodicTasks(time.Second, make(chan struct{}))
	})
	s := &Server{goaws: router.New()}
	s.http = httptest.NewServer(http.HandlerFunc(s.serve)) // binds 127.0.0.1:0
	tb.Cleanup(s.Stop)
	return s
}

// Endpoint is the server's base URL, http://127.0.0.1:<port>.
func (s *Server) Endpoint() string { return s.http.URL }

// Stop closes the listener and every connection; later requests fail to dial.
func (s *Server) Stop() {
	if s.closed.CompareAndSwap(false, true) {
		s.http.CloseClientConnections()
		s.http.Close()
	}
}

func (s *Server) serve(w http.ResponseWriter, r *http.Request) {
	target := r.Header.Get("X-Amz-Target")
	if target == "" {
		s.goaws.ServeHTTP(w, r) // query protocol, as goaws speaks it
		return
	}
	if code, msg := checkAuthorization(r.Header.Get("Authorization")); code != "" {
		writeJSONError(w, http.StatusForbidden, code, msg)
		return
	}
	switch target {
	case "AmazonSQS.GetQueueAttributes":
		s.getQueueAttributes(w, r)
	default:
		writeJSONError(w, http.StatusBadRequest, "UnsupportedOperation", target+" is not translated by sqstest")
	}
}

// checkAuthorization reads the SigV4 credential scope
// (AKID/date/region/sqs/aws4_request) and returns an SQS error code when it
// does not name this server's access key id and region.
func checkAuthorization(h string) (code, msg string) {
	_, rest, ok := strings.Cut(h, "Credential=")
	if !strings.HasPrefix(h, "AWS4-HMAC-SHA256 ") || !ok {
		return "MissingAuthenticationToken", "the request is not signed with SigV4"
	}
	scope, _, _ := strings.Cut(rest, ",")
	parts := strings.Split(scope, "/")
	switch {
	case len(parts) != 5 || parts[3] != "sqs":
		return "IncompleteSignature", "malformed credential scope"
	case parts[0] != AccessKeyID:
		return "InvalidClientTokenId", "The security token included in the request is invalid."
	case parts[2] != Region:
		return "SignatureDoesNotMatch", "the credential scope names region " + parts[2]
	}
	return "", ""
}

func (s *Server) getQueueAttributes(w http.ResponseWriter, r *http.Request) {
	var in struct {
		QueueURL       string   `json:"QueueUrl"`
		AttributeNames []string `json:"AttributeNames"`
	}
	if err := json.NewDecoder(r.Body).Decode(&in); err != nil {
		writeJSONError(w, http.StatusBadRequest, "InvalidParameterValue", err.Error())
		return
	}
	form := url.Values{fieldAction: {"GetQueueAttributes"}, fieldVersion: {apiVersion}, fieldQueueURL: {in.QueueURL}}
	for i, name := range in.AttributeNames {
		form.Set("AttributeName."+strconv.Itoa(i+1), name)
	}
	rec := s.query(form)
	if rec.Code != http.StatusOK {
		writeTranslatedError(w, rec)
		return
	}
	var out struct {
		Attributes []struct {
			Name  string `xml:"Name"`
			Value string `xml:"Value"`
		} `xml:"GetQueueAttributesResult>Attribute"`
	}
	if err := xml.Unmarshal(rec.Body.Bytes(), &out); err != nil {
		writeJSONError(w, http.StatusInternalServerError, "InternalError", "goaws reply: "+err.Error())
		return
	}
	attrs := map[string]string{}
	for _, a := range out.Attributes {
		attrs[a.Name] = a.Value
	}
	writeJSON(w, http.StatusOK, map[string]any{"Attributes": attrs})
}

// query runs one query-protocol request on goaws in process.
func (s *Server) query(form url.Values) *httptest.ResponseRecorder {
	req := httptest.NewRequest(http.MethodPost, "/", strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	rec := httptest.NewRecorder()
	s.goaws.ServeHTTP(rec, req)
	return rec
}

// writeTranslatedError turns goaws's XML error into SQS's JSON one, with the
// query-protocol code in x-amzn-query-error as SQS sends it.
func writeTranslatedError(w http.ResponseWriter, rec *httptest.ResponseRecorder) {
	var e struct {
		Code    string `xml:"Error>Code"`
		Message string `xml:"Error>Message"`
	}
	_ = xml.Unmarshal(rec.Body.Bytes(), &e)
	code := e.Code
	if code == "AWS.SimpleQueueService.NonExistentQueue" {
		code = "QueueDoesNotExist"
	}
	w.Header().Set("x-amzn-query-error", e.Code+";Sender")
	writeJSONError(w, rec.Code, code, e.Message)
}

func writeJSONError(w http.ResponseWriter, status int, code, msg string) {
	writeJSON(w, status, map[string]string{"__type": "com.amazonaws.sqs#" + code, "message": msg})
}

func writeJSON(w http.ResponseWriter, status int, body any) {
	w.Header().Set("Content-Type", "application/x-amz-json-1.0")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(body)
}

// CreateQueue creates a queue with a name unique in the process and returns
// its URL on this server.
func (s *Server) CreateQueue(tb testing.TB, name string) string {
	tb.Helper()
	name = fmt.Sprintf("%s-%d", name, queueSeq.Add(1))
	s.mustQuery(tb, url.Values{fieldAction: {"CreateQueue"}, "QueueName": {name}})
	return s.http.URL + "/queue/" + name
}

// Send puts n messages on the queue.
func (s *Server) Send(tb testing.TB, queueURL string, n int) {
	tb.Helper()
	for i := range n {
		s.mustQuery(tb, url.Values{fieldAction: {"SendMessage"}, fieldQueueURL: {queueURL}, "MessageBody": {"job-" + strconv.Itoa(i)}})
	}
}

// Receive takes up to n messages off the queue without deleting them: they
// are in flight for VisibilityTimeout. It returns how many it got.
func (s *Server) Receive(tb testing.TB, queueURL string, n int) int {
	tb.Helper()
	got := 0
	for got < n {
		body := s.mustQuery(tb, url.Values{fieldAction: {"ReceiveMessage"}, fieldQueueURL: {queueURL},
			"MaxNumberOfMessages": {strconv.Itoa(min(n-got, 10))}})
		var out struct {
			Messages []struct{} `xml:"ReceiveMessageResult>Message"`
		}
		if err := xml.Unmarshal(body, &out); err != nil {
			tb.Fatalf("sqstest: ReceiveMessage reply: %v", err)
		}
		if len(out.Messages) == 0 {
			break
		}
		got += len(out.Messages)
	}
	return got
}

func (s *Server) mustQuery(tb testing.TB, form url.Values) []byte {
	tb.Helper()
	if s.closed.Load() {
		tb.Fatalf("sqstest: %s on a stopped server", form.Get(fieldAction))
	}
	form.Set(fieldVersion, apiVersion)
	rec := s.query(form)
	if rec.Code != http.StatusOK {
		tb.Fatalf("sqstest: %s: %d %s", form.Get(fieldAction), rec.Code, rec.Body.String())
	}
	return rec.Body.Bytes()
}
