package mockapi

// The mock counts tokens by a fixed, documented rule instead of a real
// tokenizer, so tests can compute the expected numbers by hand and every
// component that estimates tokens can be checked against the same rule:
//
//   - text (message text, system text, thinking, tool names, descriptions,
//     schemas and tool inputs) costs ceil(bytes / 4) tokens;
//   - every message adds messageOverheadTokens for its role markers;
//   - every tool definition adds toolOverheadTokens;
//   - an image block costs imageTokens;
//   - a document or any other block costs ceil(bytes of its source / 4).
//
// Generated output uses 4-byte words, so the rule also holds for the text the
// mock returns: counting the returned text gives back output_tokens.
const (
	bytesPerToken         = 4
	messageOverheadTokens = 3
	toolOverheadTokens    = 3
	imageTokens           = 1600
)

// Content block types the mock looks at.
const (
	blockText       = "text"
	blockImage      = "image"
	blockToolUse    = "tool_use"
	blockToolResult = "tool_result"
)

// textTokens is the token count of n bytes of text.
func textTokens(n int) int64 { return ceilDiv(int64(n), bytesPerToken) }

// blockTokens counts one content block.
func blockTokens(b *block) int64 {
	switch b.Type {
	case blockText:
		return textTokens(len(b.Text))
	case blockImage:
		return imageTokens
	case blockToolUse, "server_tool_use":
		return textTokens(len(b.Name) + len(b.Input))
	case blockToolResult:
		return contentTokens(&b.Content)
	case "thinking":
		return textTokens(len(b.Thinking))
	case "redacted_thinking":
		return textTokens(len(b.Data))
	default:
		return textTokens(len(b.Text) + len(b.Source) + len(b.Input) + len(b.Data))
	}
}

// contentTokens counts a string-or-blocks field.
func contentTokens(c *content) int64 {
	if c.IsText {
		return textTokens(len(c.Text))
	}
	var n int64
	for i := range c.Blocks {
		n += blockTokens(&c.Blocks[i])
	}
	return n
}

// toolTokens counts one tool definition.
func toolTokens(t *tool) int64 {
	return toolOverheadTokens + textTokens(len(t.Type)+len(t.Name)+len(t.Description)+len(t.InputSchema))
}

// countInputTokens is the whole prompt's token count, what count_tokens
// returns and what input_tokens + cache_creation_input_tokens +
// cache_read_input_tokens add up to on a message.
func countInputTokens(req *messagesRequest) int64 {
	var n int64
	for i := range req.Tools {
		n += toolTokens(&req.Tools[i])
	}
	n += contentTokens(&req.System)
	for i := range req.Messages {
		n += messageOverheadTokens + contentTokens(&req.Messages[i].Content)
	}
	return n
}
