package loadtest

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"

	"github.com/anthropics/anthropic-sdk-go/v2"
)

// maxRequestLine is the longest JSONL line accepted: the Messages API
// refuses bodies over 32 MB, so a longer line could never succeed.
const maxRequestLine = 32 << 20

// RequestSpec builds the single request used when no JSONL file is given.
type RequestSpec struct {
	Model     string
	MaxTokens int64
	Prompt    string
	// System is an optional system prompt.
	System string
}

// Build returns the Messages request for the spec.
func (s RequestSpec) Build() (anthropic.MessageNewParams, error) {
	if s.Model == "" {
		return anthropic.MessageNewParams{}, errors.New("a model is required")
	}
	if s.MaxTokens <= 0 {
		return anthropic.MessageNewParams{}, fmt.Errorf("max_tokens must be positive, got %d", s.MaxTokens)
	}
	if s.Prompt == "" {
		return anthropic.MessageNewParams{}, errors.New("a prompt is required")
	}
	p := anthropic.MessageNewParams{
		Model:     s.Model,
		MaxTokens: s.MaxTokens,
		Messages:  []anthropic.MessageParam{anthropic.NewUserMessage(anthropic.NewTextBlock(s.Prompt))},
	}
	if s.System != "" {
		p.System = []anthropic.TextBlockParam{{Text: s.System}}
	}
	return p, nil
}

// ReadRequestsJSONL reads one Messages request body per line (blank lines
// are skipped), in the wire format of POST /v1/messages. A "stream" field is
// ignored: whether requests stream is a property of the run (--stream).
// Each line is checked for the fields the API requires, so a typo fails
// here with its line number instead of as thousands of 400s.
func ReadRequestsJSONL(r io.Reader) ([]anthropic.MessageNewParams, error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64<<10), maxRequestLine)
	var out []anthropic.MessageNewParams
	for line := 1; sc.Scan(); line++ {
		raw := bytes.TrimSpace(sc.Bytes())
		if len(raw) == 0 {
			continue
		}
		p, err := parseRequestLine(raw)
		if err != nil {
			return nil, fmt.Errorf("request file line %d: %w", line, err)
		}
		out = append(out, p)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("reading request file: %w", err)
	}
	if len(out) == 0 {
		return nil, errors.New("request file holds no requests")
	}
	return out, nil
}

// requiredFields mirrors what the API itself rejects as missing.
type requiredFields struct {
	Model     *string           `json:"model"`
	MaxTokens *int64            `json:"max_tokens"`
	Messages  []json.RawMessage `json:"messages"`
}

func parseRequestLine(raw []byte) (anthropic.MessageNewParams, error) {
	var req requiredFields
	if err := json.Unmarshal(raw, &req); err != nil {
		return anthropic.MessageNewParams{}, fmt.Errorf("not a JSON request object: %w", err)
	}
	switch {
	case req.Model == nil || *req.Model == "":
		return anthropic.MessageNewParams{}, errors.New(`"model" is required`)
	case req.MaxTokens == nil || *req.MaxTokens <= 0:
		return anthropic.MessageNewParams{}, errors.New(`"max_tokens" must be a positive integer`)
	case len(req.Messages) == 0:
		return anthropic.MessageNewParams{}, errors.New(`"messages" must hold at least one message`)
	}
	var p anthropic.MessageNewParams
	if err := json.Unmarshal(raw, &p); err != nil {
		return anthropic.MessageNewParams{}, fmt.Errorf("not a Messages request: %w", err)
	}
	return p, nil
}
