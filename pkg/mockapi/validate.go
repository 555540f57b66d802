package mockapi

import (
	"strconv"
	"strings"
)

// maxCacheBreakpoints is the documented limit on blocks with cache_control.
const maxCacheBreakpoints = 4

// minThinkingBudget is the smallest budget_tokens the API accepts.
const minThinkingBudget = 1024

// knownBlockTypes are the content block types the mock accepts in messages.
var knownBlockTypes = map[string]bool{
	blockText: true, blockImage: true, "document": true, "search_result": true,
	blockToolUse: true, blockToolResult: true, "server_tool_use": true,
	"web_search_tool_result": true, "web_fetch_tool_result": true,
	"code_execution_tool_result": true, "container_upload": true,
	"thinking": true, "redacted_thinking": true,
}

// validateRequest applies the API's request rules that do not depend on the
// model. Messages wording follows the API's "field.path: problem" style.
// needMaxTokens is false for count_tokens, whose body has no max_tokens.
func validateRequest(req *messagesRequest, needMaxTokens bool) *apiError {
	if req.Model == "" {
		return invalidRequest("model: Field required")
	}
	if needMaxTokens {
		if req.MaxTokens == nil {
			return invalidRequest("max_tokens: Field required")
		}
		if *req.MaxTokens < 1 {
			return invalidRequest("max_tokens: Input should be greater than or equal to 1")
		}
	}
	if req.Messages == nil {
		return invalidRequest("messages: Field required")
	}
	if len(req.Messages) == 0 {
		return invalidRequest("messages: at least one message is required")
	}
	if err := validateSampling(req); err != nil {
		return err
	}
	if err := validateSystem(&req.System); err != nil {
		return err
	}
	for i := range req.Messages {
		if err := validateMessage(i, &req.Messages[i]); err != nil {
			return err
		}
	}
	if err := validateTools(req); err != nil {
		return err
	}
	if err := validateThinking(req, needMaxTokens); err != nil {
		return err
	}
	return validateCacheControl(req)
}

func validateSampling(req *messagesRequest) *apiError {
	if t := req.Temperature; t != nil && (*t < 0 || *t > 1) {
		return invalidRequest("temperature: Input should be between 0 and 1")
	}
	if p := req.TopP; p != nil && (*p < 0 || *p > 1) {
		return invalidRequest("top_p: Input should be between 0 and 1")
	}
	if k := req.TopK; k != nil && *k < 0 {
		return invalidRequest("top_k: Input should be greater than or equal to 0")
	}
	for i, s := range req.StopSequences {
		if strings.TrimSpace(s) == "" {
			return invalidRequest("stop_sequences.%d: each stop sequence must contain non-whitespace", i)
		}
	}
	switch req.ServiceTier {
	case "", "auto", "standard_only":
	default:
		return invalidRequest("service_tier: Input should be 'auto' or 'standard_only'")
	}
	return nil
}

func validateSystem(c *content) *apiError {
	for i := range c.Blocks {
		b := &c.Blocks[i]
		if b.Type != blockText {
			return invalidRequest("system.%d.type: Input should be 'text'", i)
		}
		if b.Text == "" {
			return invalidRequest("system.%d.text: text content blocks must be non-empty", i)
		}
	}
	return nil
}

func validateMessage(i int, m *message) *apiError {
	if m.Role != "user" && m.Role != "assistant" {
		return invalidRequest("messages.%d.role: Input should be 'user' or 'assistant'", i)
	}
	c := &m.Content
	if !c.Present {
		return invalidRequest("messages.%d.content: Field required", i)
	}
	if c.IsText {
		if c.Text == "" {
			return invalidRequest("messages.%d.content: text content must be non-empty", i)
		}
		return nil
	}
	if len(c.Blocks) == 0 {
		return invalidRequest("messages.%d.content: List should have at least 1 item", i)
	}
	for j := range c.Blocks {
		b := &c.Blocks[j]
		if !knownBlockTypes[b.Type] {
			return invalidRequest("messages.%d.content.%d.type: Input tag '%s' found using 'type' does not match any of the expected tags", i, j, b.Type)
		}
		if b.Type == blockText && b.Text == "" {
			return invalidRequest("messages.%d.content.%d.text: text content blocks must be non-empty", i, j)
		}
		if b.Type == blockToolUse && (b.ID == "" || b.Name == "") {
			return invalidRequest("messages.%d.content.%d: tool_use blocks need an id and a name", i, j)
		}
		if b.Type == blockToolResult && b.ToolUseID == "" {
			return invalidRequest("messages.%d.content.%d.tool_use_id: Field required", i, j)
		}
	}
	return nil
}

func validateTools(req *messagesRequest) *apiError {
	if len(req.Tools) == 0 && req.ToolChoice == nil {
		return nil
	}
	seen := make(map[string]bool, len(req.Tools))
	for i := range req.Tools {
		t := &req.Tools[i]
		if t.Name == "" {
			return invalidRequest("tools.%d.name: Field required", i)
		}
		if (t.Type == "" || t.Type == "custom") && len(t.InputSchema) == 0 {
			return invalidRequest("tools.%d.custom.input_schema: Field required", i)
		}
		if seen[t.Name] {
			return invalidRequest("tools: Tool names must be unique.")
		}
		seen[t.Name] = true
	}
	if tc := req.ToolChoice; tc != nil {
		switch tc.Type {
		case "auto", "any", "none":
		case "tool":
			if !seen[tc.Name] {
				return invalidRequest("tool_choice.name: no tool named %q in tools", tc.Name)
			}
		default:
			return invalidRequest("tool_choice.type: Input should be 'auto', 'any', 'tool' or 'none'")
		}
	}
	return nil
}

func validateThinking(req *messagesRequest, needMaxTokens bool) *apiError {
	th := req.Thinking
	if th == nil {
		return nil
	}
	switch th.Type {
	case "disabled", "adaptive":
		return nil
	case "enabled":
	default:
		return invalidRequest("thinking.type: Input should be 'enabled', 'disabled' or 'adaptive'")
	}
	if th.BudgetTokens < minThinkingBudget {
		return invalidRequest("thinking.enabled.budget_tokens: Input should be greater than or equal to %d", minThinkingBudget)
	}
	if needMaxTokens && th.BudgetTokens >= *req.MaxTokens {
		return invalidRequest("`max_tokens` must be greater than `thinking.budget_tokens`")
	}
	return nil
}

// validateCacheControl checks every cache_control in cache order (tools,
// system, messages): a known type and TTL, at most four of them, and no 1h
// breakpoint after a 5m one (longer-lived entries must come first).
func validateCacheControl(req *messagesRequest) *apiError {
	var count int
	seen5m := false
	check := func(path string, cc *cacheControl) *apiError {
		if cc == nil {
			return nil
		}
		count++
		if cc.Type != "ephemeral" {
			return invalidRequest("%s.cache_control.type: Input should be 'ephemeral'", path)
		}
		switch cc.TTL {
		case "", "5m":
			seen5m = true
		case "1h":
			if seen5m {
				return invalidRequest("%s.cache_control.ttl: a ttl='1h' cache_control block must not come after a ttl='5m' one", path)
			}
		default:
			return invalidRequest("%s.cache_control.ttl: Input should be '5m' or '1h'", path)
		}
		return nil
	}
	for i := range req.Tools {
		if err := check(indexPath("tools", i), req.Tools[i].CacheControl); err != nil {
			return err
		}
	}
	for i := range req.System.Blocks {
		if err := check(indexPath("system", i), req.System.Blocks[i].CacheControl); err != nil {
			return err
		}
	}
	for i := range req.Messages {
		blocks := req.Messages[i].Content.Blocks
		for j := range blocks {
			if blocks[j].CacheControl == nil {
				continue
			}
			if err := check(indexPath(indexPath("messages", i)+".content", j), blocks[j].CacheControl); err != nil {
				return err
			}
		}
	}
	if err := check("body", req.CacheControl); err != nil {
		return err
	}
	if count > maxCacheBreakpoints {
		return invalidRequest("A maximum of %d blocks with cache_control may be provided. Found %d.", maxCacheBreakpoints, count)
	}
	return nil
}

func indexPath(prefix string, i int) string {
	return prefix + "." + strconv.Itoa(i)
}
