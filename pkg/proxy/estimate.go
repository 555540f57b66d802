package proxy

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
)

// Estimation constants; docs/proxy.md states the rule.
const (
	// bytesPerToken is deliberately low: English text averages about four
	// bytes per token and JSON syntax counts too, so bytes/3 over-estimates
	// the prompt (a reservation may be too large, never too small, for text).
	bytesPerToken = 3
	// imageTokens is charged per image block instead of its base64 bytes:
	// the API resizes images to about 1.15 megapixels, about 1,600 tokens at
	// most (width*height/750).
	imageTokens = 1600
)

// messagesRequest is the part of a Messages API request the proxy decides on.
type messagesRequest struct {
	// Model selects the pool (through the catalog).
	Model string
	// MaxTokens is the output reservation.
	MaxTokens int64
	// Stream says the response will be server-sent events.
	Stream bool
}

// requestError is a request the proxy refuses with 400, in the API's words.
type requestError struct{ message string }

func (e *requestError) Error() string { return e.message }

// parseMessagesRequest reads model, max_tokens and stream. Other fields are
// the API's business; only what the reservation needs is checked here.
func parseMessagesRequest(body []byte) (messagesRequest, error) {
	var raw struct {
		Model     *string          `json:"model"`
		MaxTokens *json.RawMessage `json:"max_tokens"`
		Stream    *bool            `json:"stream"`
	}
	if err := json.Unmarshal(body, &raw); err != nil {
		var typeErr *json.UnmarshalTypeError
		if errors.As(err, &typeErr) {
			if typeErr.Field == "" {
				return messagesRequest{}, &requestError{"request body must be a JSON object"}
			}
			return messagesRequest{}, &requestError{fmt.Sprintf("%s: wrong type, got JSON %s", typeErr.Field, typeErr.Value)}
		}
		return messagesRequest{}, &requestError{"request body is not valid JSON"}
	}
	if raw.Model == nil || *raw.Model == "" {
		return messagesRequest{}, &requestError{"model: Field required"}
	}
	if raw.MaxTokens == nil {
		return messagesRequest{}, &requestError{"max_tokens: Field required"}
	}
	var maxTokens int64
	if err := json.Unmarshal(*raw.MaxTokens, &maxTokens); err != nil || maxTokens < 1 {
		return messagesRequest{}, &requestError{"max_tokens: must be an integer of at least 1"}
	}
	return messagesRequest{Model: *raw.Model, MaxTokens: maxTokens, Stream: raw.Stream != nil && *raw.Stream}, nil
}

// EstimateInputTokens is the proxy's conservative input-token estimate of a
// Messages API request body: ceil(bytes/3) of the whole JSON body, except
// that each image block counts 1,600 tokens instead of its base64 bytes.
// Settlement replaces the estimate with the real count afterwards, so
// over-estimating only delays a call; under-estimating could let the pool
// over-commit, which is why JSON syntax, tool schemas and system prompts are
// all counted as if they were text.
func EstimateInputTokens(body []byte) int64 {
	n := int64(len(body))
	var images int64
	// Only bodies that can hold images are walked; the common text-only
	// request costs one scan.
	if bytes.Contains(body, []byte(`"image"`)) {
		var doc any
		if json.Unmarshal(body, &doc) == nil {
			var base64Bytes int64
			images, base64Bytes = countImages(doc)
			n -= base64Bytes
		}
	}
	return tokensForBytes(max(n, 0)) + images*imageTokens
}

// countImages walks a decoded JSON document for content blocks of type image
// and returns how many there are and how many bytes their base64 data take.
func countImages(v any) (images, base64Bytes int64) {
	switch x := v.(type) {
	case map[string]any:
		if x["type"] == "image" {
			images++
			if src, ok := x["source"].(map[string]any); ok && src["type"] == "base64" {
				if data, ok := src["data"].(string); ok {
					base64Bytes += int64(len(data))
				}
			}
			return images, base64Bytes
		}
		for _, child := range x {
			i, b := countImages(child)
			images, base64Bytes = images+i, base64Bytes+b
		}
	case []any:
		for _, child := range x {
			i, b := countImages(child)
			images, base64Bytes = images+i, base64Bytes+b
		}
	}
	return images, base64Bytes
}

// tokensForBytes is ceil(n / bytesPerToken).
func tokensForBytes(n int64) int64 { return (n + bytesPerToken - 1) / bytesPerToken }
