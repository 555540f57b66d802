package mockapi

import (
	"bytes"
	"encoding/json"
	"errors"
)

// messagesRequest is the subset of a Messages API request body the mock
// reads. Unknown fields are accepted and ignored, so requests using newer
// parameters than the mock knows still work.
type messagesRequest struct {
	Model         string          `json:"model"`
	MaxTokens     *int64          `json:"max_tokens"`
	Messages      []message       `json:"messages"`
	System        content         `json:"system"`
	Stream        bool            `json:"stream"`
	StopSequences []string        `json:"stop_sequences"`
	Temperature   *float64        `json:"temperature"`
	TopP          *float64        `json:"top_p"`
	TopK          *int64          `json:"top_k"`
	Tools         []tool          `json:"tools"`
	ToolChoice    *toolChoice     `json:"tool_choice"`
	Thinking      *thinking       `json:"thinking"`
	CacheControl  *cacheControl   `json:"cache_control"`
	Metadata      json.RawMessage `json:"metadata"`
	ServiceTier   string          `json:"service_tier"`
}

// message is one turn of the conversation.
type message struct {
	Role    string  `json:"role"`
	Content content `json:"content"`
}

// content is a field that the API accepts either as a plain string or as a
// list of content blocks (message content, system, tool_result content).
type content struct {
	Text    string
	Blocks  []block
	IsText  bool // the JSON value was a string
	Present bool // the field was in the JSON at all (null counts as absent)
}

// UnmarshalJSON accepts a string or an array of blocks.
func (c *content) UnmarshalJSON(data []byte) error {
	data = bytes.TrimLeft(data, " \t\r\n")
	if len(data) == 0 || bytes.Equal(data, []byte("null")) {
		return nil
	}
	c.Present = true
	switch data[0] {
	case '"':
		c.IsText = true
		return json.Unmarshal(data, &c.Text)
	case '[':
		return json.Unmarshal(data, &c.Blocks)
	default:
		return errContentShape
	}
}

var errContentShape = errors.New("must be a string or a list of content blocks")

// block is one content block. Only the fields that matter for token counting,
// caching and validation are read; the rest of each block is carried in the
// raw fields verbatim.
type block struct {
	Type         string          `json:"type"`
	Text         string          `json:"text"`
	ID           string          `json:"id"`
	Name         string          `json:"name"`
	Input        json.RawMessage `json:"input"`
	ToolUseID    string          `json:"tool_use_id"`
	Content      content         `json:"content"`
	IsError      bool            `json:"is_error"`
	Source       json.RawMessage `json:"source"`
	Thinking     string          `json:"thinking"`
	Signature    string          `json:"signature"`
	Data         string          `json:"data"`
	CacheControl *cacheControl   `json:"cache_control"`
}

// tool is a tool definition; client tools have an input_schema, server tools
// (web search, code execution) a versioned type instead.
type tool struct {
	Type         string          `json:"type"`
	Name         string          `json:"name"`
	Description  string          `json:"description"`
	InputSchema  json.RawMessage `json:"input_schema"`
	CacheControl *cacheControl   `json:"cache_control"`
}

// toolChoice is how the model may use tools.
type toolChoice struct {
	Type string `json:"type"`
	Name string `json:"name"`
}

// thinking is the extended-thinking switch.
type thinking struct {
	Type         string `json:"type"`
	BudgetTokens int64  `json:"budget_tokens"`
}

// cacheControl marks the end of a cacheable prefix.
type cacheControl struct {
	Type string `json:"type"`
	TTL  string `json:"ttl"`
}
