package mockapi_test

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/anthropics/anthropic-sdk-go/v2"
	"github.com/anthropics/anthropic-sdk-go/v2/option"

	"github.com/claudecap/claudecap/pkg/mockapi"
)

func TestSDKMessage(t *testing.T) {
	_, hs := startMock(t, mockapi.Config{OutputTokens: mockapi.Fixed(12)})
	client := newClient(hs)
	var raw *http.Response
	prompt := "Say hello to the mock."
	msg, err := client.Messages.New(context.Background(), userParams(prompt, 100), option.WithResponseInto(&raw))
	if err != nil {
		t.Fatalf("Messages.New: %v", err)
	}
	if msg.Type != "message" || msg.Role != "assistant" || msg.Model != testModel {
		t.Errorf("message shell = %q %q %q", msg.Type, msg.Role, msg.Model)
	}
	if !strings.HasPrefix(msg.ID, "msg_") || !strings.HasPrefix(raw.Header.Get("request-id"), "req_") {
		t.Errorf("ids: message %q, request-id %q", msg.ID, raw.Header.Get("request-id"))
	}
	if len(msg.Content) != 1 || msg.Content[0].Type != "text" || len(msg.Content[0].Text) != 12*4 {
		t.Fatalf("content = %+v, want one text block of 48 bytes", msg.Content)
	}
	if msg.StopReason != anthropic.StopReasonEndTurn {
		t.Errorf("stop_reason = %q", msg.StopReason)
	}
	if msg.Usage.InputTokens != ruleTokens(prompt) || msg.Usage.OutputTokens != 12 {
		t.Errorf("usage = in %d out %d, want %d and 12", msg.Usage.InputTokens, msg.Usage.OutputTokens, ruleTokens(prompt))
	}
	if msg.Usage.ServiceTier != "standard" {
		t.Errorf("service_tier = %q", msg.Usage.ServiceTier)
	}
	if raw.Header.Get("anthropic-ratelimit-requests-limit") != "" {
		t.Error("an unlimited mock must not send rate-limit headers")
	}
}

func TestSDKMaxTokensAndStopSequence(t *testing.T) {
	_, hs := startMock(t, mockapi.Config{OutputTokens: mockapi.Fixed(500)})
	client := newClient(hs)
	msg, err := client.Messages.New(context.Background(), userParams("long answer please", 10))
	if err != nil {
		t.Fatal(err)
	}
	if msg.StopReason != anthropic.StopReasonMaxTokens || msg.Usage.OutputTokens != 10 {
		t.Errorf("got %q with %d output tokens, want max_tokens with 10", msg.StopReason, msg.Usage.OutputTokens)
	}
	// Cut the same kind of text at a word it contains.
	word := msg.Content[0].Text[8:12]
	p := userParams("long answer please", 400)
	p.StopSequences = []string{word}
	msg, err = client.Messages.New(context.Background(), p)
	if err != nil {
		t.Fatal(err)
	}
	if msg.StopReason != anthropic.StopReasonStopSequence || msg.StopSequence != word {
		t.Fatalf("stop = %q %q, want stop_sequence %q", msg.StopReason, msg.StopSequence, word)
	}
	text := msg.Content[0].Text
	if strings.Contains(text, word) || msg.Usage.OutputTokens != int64((len(text)+3)/4) {
		t.Errorf("text %q still contains %q or output %d disagrees with the token rule", text, word, msg.Usage.OutputTokens)
	}
}

func TestSDKStreamingAccumulate(t *testing.T) {
	_, hs := startMock(t, mockapi.Config{OutputTokens: mockapi.Fixed(30), Latency: mockapi.Latency{TokensPerDelta: 4}})
	client := newClient(hs)
	prompt := "Stream something."
	stream := client.Messages.NewStreaming(context.Background(), userParams(prompt, 1000))
	var acc anthropic.Message
	var types []string
	var deltas int
	for stream.Next() {
		ev := stream.Current()
		types = append(types, ev.Type)
		if ev.Type == "content_block_delta" {
			deltas++
		}
		if err := acc.Accumulate(ev); err != nil {
			t.Fatalf("Accumulate: %v", err)
		}
	}
	if err := stream.Err(); err != nil {
		t.Fatalf("stream: %v", err)
	}
	if deltas != 8 { // ceil(30/4)
		t.Errorf("%d deltas, want 8", deltas)
	}
	want := []string{"message_start", "content_block_start"}
	if len(types) < 5 || types[0] != want[0] || types[1] != want[1] || types[len(types)-1] != "message_stop" || types[len(types)-2] != "message_delta" {
		t.Errorf("event order = %v", types)
	}
	if len(acc.Content) != 1 || len(acc.Content[0].Text) != 120 {
		t.Fatalf("accumulated content = %+v", acc.Content)
	}
	if acc.StopReason != anthropic.StopReasonEndTurn || acc.Usage.OutputTokens != 30 || acc.Usage.InputTokens != ruleTokens(prompt) {
		t.Errorf("accumulated stop %q usage %+v", acc.StopReason, acc.Usage)
	}
}

func TestSDKCountTokensMatchesUsage(t *testing.T) {
	_, hs := startMock(t, mockapi.Config{OutputTokens: mockapi.Fixed(5)})
	client := newClient(hs)
	prompt := strings.Repeat("count me ", 37)
	res, err := client.Messages.CountTokens(context.Background(), anthropic.MessageCountTokensParams{
		Model:    testModel,
		Messages: []anthropic.MessageParam{anthropic.NewUserMessage(anthropic.NewTextBlock(prompt))},
		System:   anthropic.MessageCountTokensParamsSystemUnion{OfString: anthropic.String("be brief")},
	})
	if err != nil {
		t.Fatal(err)
	}
	want := ruleTokens(prompt) + 2 // "be brief" is 8 bytes
	if res.InputTokens != want {
		t.Errorf("count_tokens = %d, want %d", res.InputTokens, want)
	}
	p := userParams(prompt, 10)
	p.System = []anthropic.TextBlockParam{{Text: "be brief"}}
	msg, err := client.Messages.New(context.Background(), p)
	if err != nil {
		t.Fatal(err)
	}
	if msg.Usage.InputTokens != want {
		t.Errorf("message input_tokens = %d, count_tokens said %d", msg.Usage.InputTokens, want)
	}
}

func TestSDKModels(t *testing.T) {
	_, hs := startMock(t, mockapi.Config{})
	client := newClient(hs)
	pager := client.Models.ListAutoPaging(context.Background(), anthropic.ModelListParams{Limit: anthropic.Int(2)})
	seen := map[string]bool{}
	for pager.Next() {
		m := pager.Current()
		if seen[m.ID] {
			t.Errorf("model %s listed twice", m.ID)
		}
		seen[m.ID] = true
	}
	if err := pager.Err(); err != nil {
		t.Fatal(err)
	}
	if !seen["claude-sonnet-4-5-20250929"] || !seen["claude-haiku-4-5-20251001"] {
		t.Errorf("listed %v", seen)
	}
	m, err := client.Models.Get(context.Background(), "claude-sonnet-4-5", anthropic.ModelGetParams{})
	if err != nil {
		t.Fatal(err)
	}
	if m.ID != "claude-sonnet-4-5-20250929" || m.DisplayName != "Claude Sonnet 4.5" || m.CreatedAt.Year() != 2025 {
		t.Errorf("model = %s %q %v", m.ID, m.DisplayName, m.CreatedAt)
	}
}

func TestSDKErrors(t *testing.T) {
	tests := []struct {
		name    string
		cfg     mockapi.Config
		params  anthropic.MessageNewParams
		status  int
		errType string
	}{
		{"unknown model", mockapi.Config{}, anthropic.MessageNewParams{Model: "claude-nope", MaxTokens: 5, Messages: userParams("x", 5).Messages}, 404, "not_found_error"},
		{"max_tokens above model max", mockapi.Config{}, userParams("x", 999_999), 400, "invalid_request_error"},
		{"empty text block", mockapi.Config{}, userParams("", 5), 400, "invalid_request_error"},
		{"wrong key", mockapi.Config{APIKeys: []string{"other"}}, userParams("x", 5), 401, "authentication_error"},
		{"overloaded", mockapi.Config{Faults: mockapi.Faults{Overloaded: 1}}, userParams("x", 5), 529, "overloaded_error"},
		{"api error", mockapi.Config{Faults: mockapi.Faults{APIError: 1}}, userParams("x", 5), 500, "api_error"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, hs := startMock(t, tc.cfg)
			// The timeout lets the SDK send a max_tokens that implies a long call.
			client := newClient(hs, option.WithMaxRetries(0), option.WithRequestTimeout(time.Minute))
			_, err := client.Messages.New(context.Background(), tc.params)
			var apiErr *anthropic.Error
			if !errors.As(err, &apiErr) {
				t.Fatalf("err = %v, want *anthropic.Error", err)
			}
			if apiErr.StatusCode != tc.status || string(apiErr.Type()) != tc.errType {
				t.Errorf("got %d %q, want %d %q", apiErr.StatusCode, apiErr.Type(), tc.status, tc.errType)
			}
			if !strings.HasPrefix(apiErr.RequestID, "req_") || apiErr.Message == "" {
				t.Errorf("request id %q, message %q", apiErr.RequestID, apiErr.Message)
			}
		})
	}
}

func TestSDKMidStreamError(t *testing.T) {
	_, hs := startMock(t, mockapi.Config{OutputTokens: mockapi.Fixed(50), Faults: mockapi.Faults{StreamError: 1}})
	client := newClient(hs, option.WithMaxRetries(0))
	stream := client.Messages.NewStreaming(context.Background(), userParams("x", 100))
	var events int
	for stream.Next() {
		events++
	}
	var apiErr *anthropic.Error
	if err := stream.Err(); !errors.As(err, &apiErr) || string(apiErr.Type()) != "overloaded_error" {
		t.Fatalf("stream error = %v, want an overloaded_error *anthropic.Error", stream.Err())
	}
	if events < 2 { // message_start and content_block_start come before any cut
		t.Errorf("only %d events before the error", events)
	}
}

func TestSDKDroppedConnection(t *testing.T) {
	srv, hs := startMock(t, mockapi.Config{OutputTokens: mockapi.Fixed(50), Faults: mockapi.Faults{Dropped: 1}})
	client := newClient(hs, option.WithMaxRetries(0))
	_, err := client.Messages.New(context.Background(), userParams("x", 100))
	var apiErr *anthropic.Error
	if err == nil || errors.As(err, &apiErr) {
		t.Fatalf("non-streaming err = %v, want a transport error", err)
	}
	stream := client.Messages.NewStreaming(context.Background(), userParams("x", 100))
	for stream.Next() {
	}
	if stream.Err() == nil || errors.As(stream.Err(), &apiErr) {
		t.Fatalf("streaming err = %v, want a transport error", stream.Err())
	}
	if got := srv.Stats().Faults["dropped"]; got != 2 {
		t.Errorf("stats dropped = %d, want 2", got)
	}
}
