package proxy

import (
	"strings"
	"testing"
)

// requestWith is a small Messages request whose user turn holds blocks (a
// JSON array's elements) and whose tools list holds tools.
func requestWith(blocks, tools string) string {
	body := `{"model":"claude-sonnet-4-5","max_tokens":100,"messages":[{"role":"user","content":[` + blocks + `]}]`
	if tools != "" {
		body += `,"tools":[` + tools + `]`
	}
	return body + `}`
}

// Content the API loads or produces itself is not in the body, so its bytes
// say nothing: each kind must get an allowance of its own (review finding 2).
func TestEstimateAllowsForContentOutsideTheBody(t *testing.T) {
	const question = `{"type":"text","text":"Summarize this."}`
	for _, tc := range []struct {
		name  string
		body  string
		least int64 // what the API can charge for it, at least
	}{
		{"PDF by url", requestWith(`{"type":"document","source":{"type":"url","url":"https://example.com/report.pdf"}},`+question, ""), 20000},
		{"document by file id", requestWith(`{"type":"document","source":{"type":"file","file_id":"file_011CNha8iCJcU1wXNR6q4V8w"}},`+question, ""), 20000},
		{"source before type", requestWith(`{"source":{"url":"https://example.com/a.pdf","type":"url"},"type":"document"},`+question, ""), 20000},
		{"image by url", requestWith(`{"type":"image","source":{"type":"url","url":"https://example.com/a.png"}},`+question, ""), imageTokens},
		{"image by file id", requestWith(`{"type":"image","source":{"type":"file","file_id":"file_01"}},`+question, ""), imageTokens},
		{"web fetch", requestWith(question, `{"type":"web_fetch_20250910","name":"web_fetch"}`), 10000},
		{"web search", requestWith(question, `{"type":"web_search_20250305","name":"web_search","max_uses":3}`), 3 * 5000},
		{"code execution", requestWith(question, `{"type":"code_execution_20250825","name":"code_execution"}`), 5000},
		{"escaped image type", requestWith(`{"type":"\u0069mage","source":{"type":"url","url":"https://example.com/a.png"}},`+question, ""), imageTokens},
		{"escaped type key", requestWith(`{"\u0074ype":"image","source":{"type":"file","file_id":"f"}},`+question, ""), imageTokens},
		{"escaped document type", requestWith(`{"type":"docum\u0065nt","source":{"type":"\u0075rl","url":"https://example.com/a.pdf"}},`+question, ""), 20000},
		{"escaped source key", requestWith(`{"type":"document","sourc\u0065":{"type":"file","file_id":"f"}},`+question, ""), 20000},
		{"escaped tool type", requestWith(question, `{"type":"web_f\u0065tch_20250910","name":"web_fetch"}`), 10000},
		{"MCP server", `{"model":"m","max_tokens":9,"messages":[],"mcp_servers":[{"type":"url","url":"https://mcp.example.com/sse","name":"x"}]}`, 5000},
	} {
		if got := EstimateInputTokens([]byte(tc.body)); got < tc.least {
			t.Errorf("%s: estimate %d, want at least %d", tc.name, got, tc.least)
		}
	}
}

// An escaped "image" is an image: its base64 bytes are replaced by the flat
// image cost exactly as for the plain spelling.
func TestEstimateDecodesEscapes(t *testing.T) {
	data := strings.Repeat("QUJD", 5000)
	plain := requestWith(`{"type":"image","source":{"type":"base64","media_type":"image/png","data":"`+data+`"}}`, "")
	escaped := requestWith(`{"type":"\u0069mage","source":{"\u0074ype":"base\u0036\u0034","media_type":"image/png","data":"`+data+`"}}`, "")
	want := tokensForBytes(int64(len(plain)-len(data))) + imageTokens
	if got := EstimateInputTokens([]byte(plain)); got != want {
		t.Errorf("plain image: %d, want %d", got, want)
	}
	// The escapes' own bytes still count as text.
	if got, want := EstimateInputTokens([]byte(escaped)), tokensForBytes(int64(len(escaped)-len(data)))+imageTokens; got != want {
		t.Errorf("escaped image: %d, want %d", got, want)
	}
}

// Keys match exactly, as the API matches them; a duplicated key takes its
// last value, except that max_tokens reserves the largest one seen (review
// finding 3).
func TestParseMatchesKeysExactly(t *testing.T) {
	for _, tc := range []struct {
		name    string
		body    string
		want    messagesRequest
		wantErr string
	}{
		{"other case later", `{"model":"m","max_tokens":4096,"MAX_TOKENS":1}`, messagesRequest{Model: "m", MaxTokens: 4096}, ""},
		{"other case first", `{"model":"m","MAX_TOKENS":1,"max_tokens":4096}`, messagesRequest{Model: "m", MaxTokens: 4096}, ""},
		{"only another case", `{"model":"m","Max_Tokens":4096}`, messagesRequest{}, "max_tokens: Field required"},
		{"model in another case", `{"Model":"m","max_tokens":5}`, messagesRequest{}, "model: Field required"},
		{"model duplicated in another case", `{"model":"claude-sonnet-4-5","Model":"claude-opus-4-1","max_tokens":5}`, messagesRequest{Model: "claude-sonnet-4-5", MaxTokens: 5}, ""},
		{"stream in another case", `{"model":"m","max_tokens":5,"stream":true,"Stream":false}`, messagesRequest{Model: "m", MaxTokens: 5, Stream: true}, ""},
		{"escaped key", `{"model":"m","max\u005ftokens":7}`, messagesRequest{Model: "m", MaxTokens: 7}, ""},
		{"escaped model", `{"model":"claude-\u0073onnet-4-5","max_tokens":7}`, messagesRequest{Model: "claude-sonnet-4-5", MaxTokens: 7}, ""},
		{"duplicate, larger first", `{"model":"m","max_tokens":4096,"max_tokens":1}`, messagesRequest{Model: "m", MaxTokens: 4096}, ""},
		{"duplicate, larger last", `{"model":"m","max_tokens":1,"max_tokens":4096}`, messagesRequest{Model: "m", MaxTokens: 4096}, ""},
		{"duplicate, last invalid", `{"model":"m","max_tokens":4096,"max_tokens":0}`, messagesRequest{}, "at least 1"},
		{"duplicate, last null", `{"model":"m","max_tokens":4096,"max_tokens":null}`, messagesRequest{}, "max_tokens: Field required"},
		{"duplicate model, last wins", `{"model":"a","model":"b","max_tokens":3}`, messagesRequest{Model: "b", MaxTokens: 3}, ""},
		{"duplicate stream, last wins", `{"model":"m","stream":true,"max_tokens":3,"stream":false}`, messagesRequest{Model: "m", MaxTokens: 3}, ""},
		{"nested max_tokens is not the request's", `{"model":"m","max_tokens":3,"metadata":{"max_tokens":99999}}`, messagesRequest{Model: "m", MaxTokens: 3}, ""},
	} {
		got, err := parseMessagesRequest([]byte(tc.body))
		if tc.wantErr == "" {
			if err != nil || got != tc.want {
				t.Errorf("%s: got %+v, %v; want %+v", tc.name, got, err, tc.want)
			}
			continue
		}
		if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
			t.Errorf("%s: got %+v, %v; want an error containing %q", tc.name, got, err, tc.wantErr)
		}
	}
}

// Each allowance is added once per block or tool, on top of the body's bytes.
func TestEstimateAllowances(t *testing.T) {
	const q = `{"type":"text","text":"Go."}`
	for _, tc := range []struct {
		name      string
		body      string
		allowance int64
	}{
		{"PDF by url", requestWith(`{"type":"document","source":{"type":"url","url":"https://e.x/a.pdf"}}`, ""), referencedDocumentTokens},
		{"two documents by file id", requestWith(`{"type":"document","source":{"type":"file","file_id":"a"}},{"type":"document","source":{"type":"file","file_id":"b"}}`, ""), 2 * referencedDocumentTokens},
		{"inline text document counts its bytes", requestWith(`{"type":"document","source":{"type":"text","media_type":"text/plain","data":"hello"}}`, ""), 0},
		{"the last source counts", requestWith(`{"type":"document","source":{"type":"url","url":"u"},"source":{"type":"text","data":"x"}}`, ""), 0},
		{"image by url", requestWith(`{"type":"image","source":{"type":"url","url":"https://e.x/a.png"}}`, ""), imageTokens},
		{"custom tool counts its bytes", requestWith(q, `{"name":"get_weather","input_schema":{"type":"object"}}`), 0},
		{"explicitly custom tool", requestWith(q, `{"type":"custom","name":"x","input_schema":{"type":"object"}}`), 0},
		{"client tool the API defines", requestWith(q, `{"type":"bash_20250124","name":"bash"}`), anthropicToolTokens},
		{"web search, used once", requestWith(q, `{"type":"web_search_20250305","name":"web_search"}`), anthropicToolTokens + serverToolUseTokens},
		{"web search, max_uses", requestWith(q, `{"type":"web_search_20250305","name":"web_search","max_uses":3}`), anthropicToolTokens + 3*serverToolUseTokens},
		{"web search, max_uses capped", requestWith(q, `{"type":"web_search_20250305","name":"web_search","max_uses":500}`), anthropicToolTokens + serverToolMaxUses*serverToolUseTokens},
		{"web fetch bounded by max_content_tokens", requestWith(q, `{"type":"web_fetch_20250910","name":"web_fetch","max_uses":2,"max_content_tokens":3000}`), anthropicToolTokens + 2*3000},
		{"MCP toolset", requestWith(q, `{"type":"mcp_toolset","mcp_server_name":"x"}`), anthropicToolTokens + serverToolUseTokens},
		{"MCP servers", `{"model":"m","max_tokens":9,"messages":[],"mcp_servers":[{"type":"url","url":"u","name":"a"},{"type":"url","url":"v","name":"b"}]}`, 2 * serverToolUseTokens},
		{"past server tool blocks count their bytes", requestWith(`{"type":"server_tool_use","id":"s","name":"web_search","input":{"query":"q"}},{"type":"web_search_tool_result","tool_use_id":"s","content":[]}`, ""), 0},
		{"a tools list below the top level is not the request's", requestWith(`{"type":"tool_use","id":"t","name":"x","input":{"tools":[{"type":"web_search_20250305"}]}}`, ""), 0},
	} {
		want := tokensForBytes(int64(len(tc.body))) + tc.allowance
		if got := EstimateInputTokens([]byte(tc.body)); got != want {
			t.Errorf("%s: estimate %d, want %d (bytes) + %d", tc.name, got, want-tc.allowance, tc.allowance)
		}
	}
}
