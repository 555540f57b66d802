package proxy

import (
	"bytes"
	"encoding/json"
	"errors"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"unicode/utf8"
)

// bodySize is about the largest body the API takes (32 MB).
const bodySize = 30 << 20

// imageBody is a request carrying one base64 image of about size bytes.
func imageBody(size int) []byte {
	var b bytes.Buffer
	b.Grow(size + 256)
	b.WriteString(`{"model":"claude-sonnet-4-5","max_tokens":1024,"messages":[{"role":"user","content":[{"type":"image","source":{"type":"base64","media_type":"image/png","data":"`)
	for b.Len() < size {
		b.WriteString("iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg")
	}
	b.WriteString(`"}},{"type":"text","text":"What is in this image?"}]}]}`)
	return b.Bytes()
}

// blocksBody is a request of about size bytes made of many small blocks,
// the shape that makes a decoded tree largest for its bytes.
func blocksBody(size int) []byte {
	var b bytes.Buffer
	b.Grow(size + 256)
	b.WriteString(`{"model":"claude-sonnet-4-5","max_tokens":1024,"messages":[{"role":"user","content":[`)
	for b.Len() < size {
		b.WriteString(`{"type":"image","source":{"type":"url","url":"https://e.x/a.png"}},{"type":"text","text":"a"},[1,2,3],{},`)
	}
	b.WriteString(`{"type":"text","text":"Which of these are cats?"}]}]}`)
	return b.Bytes()
}

// readForAdmission is everything serveMessages reads from a body before it
// admits the call.
func readForAdmission(body []byte) (messagesRequest, int64, error) { return scanMessagesRequest(body) }

// allocatedBy reports the bytes f allocates on the heap.
func allocatedBy(f func()) uint64 {
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	f()
	runtime.ReadMemStats(&after)
	return after.TotalAlloc - before.TotalAlloc
}

// Reading a 30 MiB body for admission must not build a tree of it: what it
// allocates stays below the body's own size (review finding 1: the decoded
// tree peaked at 1.5 GiB).
func TestReadingALargeBodyAllocatesLittle(t *testing.T) {
	for name, body := range map[string][]byte{"one image": imageBody(bodySize), "many blocks": blocksBody(bodySize)} {
		var err error
		allocated := allocatedBy(func() { _, _, err = readForAdmission(body) })
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		t.Logf("%s: %d MiB body, %d KiB allocated (%.3f of the body)", name, len(body)>>20, allocated>>10, float64(allocated)/float64(len(body)))
		if allocated > uint64(len(body)) {
			t.Errorf("%s: reading a %d MiB body allocated %d MiB", name, len(body)>>20, allocated>>20)
		}
	}
}

// A sanity check of the bodies above.
func TestLargeBodiesAreRequests(t *testing.T) {
	req, est, err := readForAdmission(imageBody(1 << 20))
	if err != nil || req.Model != "claude-sonnet-4-5" || req.MaxTokens != 1024 || est > 2000 {
		t.Errorf("image body: %+v, estimate %d, %v", req, est, err)
	}
	if _, _, err := readForAdmission(blocksBody(1 << 20)); err != nil || !strings.Contains(string(blocksBody(200)), `"image"`) {
		t.Errorf("blocks body: %v", err)
	}
}

// The walk accepts exactly the documents encoding/json accepts.
func TestWalkValidatesLikeEncodingJSON(t *testing.T) {
	for _, doc := range []string{
		``, ` `, `{}`, `[]`, `{} `, ` {"a":1}`, `{"a":1}x`, `{"a":1,}`, `[1,]`, `[1 2]`, `{"a" 1}`, `{"a":}`, `{a:1}`, `{"a":1 "b":2}`,
		`0`, `01`, `-`, `-0`, `1.`, `1.5`, `1e`, `1e+`, `1E-7`, `.5`, `+1`, `tru`, `true`, `nul`, `null`, `falsey`,
		`"a`, `"\x"`, `"\u12"`, `"\u12G4"`, `"\ud800"`, `"\ud83d\ude00"`, "\"\t\"", "\"\x7f\"", "\"\xff\"", `"\/\b\f\n\r\t\"\\"`,
		`{"a":{"b":[true,false,null,{"c":"d"}]}}`, "\"0\"\x00", "{}\x00", "[\x00]", `[[[]]]`, `[[[]]`, `{"a":[}`, "\ufeff{}", `{"model":"m","max_tokens":1}`,
	} {
		w := walkRequest([]byte(doc))
		if got, want := w.err == nil, json.Valid([]byte(doc)); got != want {
			t.Errorf("%q: walk accepts %v, encoding/json %v (%v)", doc, got, want, w.err)
		}
	}
}

// nested is a request whose messages nest depth levels deep in all.
func nested(depth int) []byte {
	inner := depth - 2 // the request object and the messages array
	return []byte(`{"model":"m","max_tokens":1,"messages":[` + strings.Repeat("[", inner) + strings.Repeat("]", inner) + `]}`)
}

func TestWalkDepthIsBounded(t *testing.T) {
	if _, _, err := scanMessagesRequest(nested(maxJSONDepth)); err != nil {
		t.Errorf("%d levels: %v", maxJSONDepth, err)
	}
	_, _, err := scanMessagesRequest(nested(maxJSONDepth + 1))
	var re *requestError
	if !errors.As(err, &re) || !strings.Contains(err.Error(), "deeper than") {
		t.Errorf("%d levels: %v, want a request error", maxJSONDepth+1, err)
	}
	if got, want := EstimateInputTokens(nested(100_000)), tokensForBytes(int64(len(nested(100_000)))); got != want {
		t.Errorf("too deep a body estimates %d, want its bytes %d", got, want)
	}
}

// FuzzRequestWalk checks the one-pass walk against encoding/json: the same
// documents are valid, and the fields and estimate inputs read from a valid
// one are those of its decoded tree. A tree's map keys match exactly, as the
// walk must; it keeps only the last of duplicated keys, where the walk reads
// them all (and the unit tests check what it makes of them), so documents
// with duplicates are only checked for validity.
//
//	go test ./pkg/proxy -run '^$' -fuzz FuzzRequestWalk -fuzztime 30s
func FuzzRequestWalk(f *testing.F) {
	f.Add([]byte(`{"model":"m","max_tokens":9,"stream":true,"messages":[{"role":"user","content":[{"type":"image","source":{"type":"base64","data":"QUJD"}}]}]}`))
	f.Add([]byte(requestWith(`{"type":"document","source":{"type":"url","url":"u"}},{"type":"\u0069mage","source":{"type":"file","file_id":"f"}}`,
		`{"type":"web_search_20250305","max_uses":4},{"type":"web_fetch_20250910","max_content_tokens":3000},{"type":"bash_20250124"},{"name":"x"}`)))
	f.Add([]byte(`{"model":"a","MODEL":"b","max_tokens":5,"mcp_servers":[{"url":"u"},1],"tools":[{"type":"custom","max_uses":1e3}]}`))
	f.Add([]byte(`[{"type":"image","source":{"type":"base64","data":"yy"}}]`))
	f.Fuzz(func(t *testing.T, in []byte) {
		w := walkRequest(in)
		if valid := json.Valid(in); (w.err == nil) != valid && !errors.Is(w.err, errJSONTooDeep) {
			t.Fatalf("walk error %v, encoding/json valid %v: %q", w.err, valid, in)
		}
		if w.err != nil || hasDuplicateKeys(in) {
			return
		}
		dec := json.NewDecoder(bytes.NewReader(in))
		dec.UseNumber()
		var doc any
		if err := dec.Decode(&doc); err != nil {
			t.Fatalf("valid JSON does not decode: %v", err)
		}
		want, ok := referenceInputs(doc)
		if !ok {
			return
		}
		got := w.est
		if !utf8.Valid(in) || bytes.IndexByte(in, '\\') >= 0 { // decoded lengths differ from written ones
			got.inlineImageBytes, want.inlineImageBytes = 0, 0
		}
		got.bodyBytes = 0
		if got != want {
			t.Fatalf("walk read %+v, the decoded tree %+v: %q", got, want, in)
		}
		req, _, err := scanMessagesRequest(in)
		if err != nil || !utf8.Valid(in) {
			return
		}
		top, _ := doc.(map[string]any)
		stream, _ := top["stream"].(bool)
		if req.Model != top["model"] || req.Stream != stream || req.MaxTokens != referenceCount(top["max_tokens"]) {
			t.Fatalf("read %+v from %q", req, in)
		}
	})
}

// hasDuplicateKeys reports whether an object of a valid document repeats a
// key.
func hasDuplicateKeys(in []byte) bool {
	type frame struct {
		keys    map[string]bool // nil for an array
		wantKey bool
	}
	dec := json.NewDecoder(bytes.NewReader(in))
	var stack []*frame
	for {
		tok, err := dec.Token()
		if err != nil {
			return false
		}
		var top *frame
		if len(stack) > 0 {
			top = stack[len(stack)-1]
		}
		if key, ok := tok.(string); ok && top != nil && top.wantKey {
			if top.keys[key] {
				return true
			}
			top.keys[key], top.wantKey = true, false
			continue
		}
		switch tok {
		case json.Delim('{'):
			stack = append(stack, &frame{keys: map[string]bool{}, wantKey: true})
			continue
		case json.Delim('['):
			stack = append(stack, &frame{})
			continue
		case json.Delim('}'), json.Delim(']'):
			stack = stack[:len(stack)-1]
			if len(stack) == 0 {
				return false
			}
			top = stack[len(stack)-1]
		}
		if top != nil && top.keys != nil {
			top.wantKey = true // a member's value is complete
		}
	}
}

// referenceInputs is what the estimate must count of a decoded body, read
// the plain way: every object is a content block, except the top-level
// request and its tools, which are read as tools. ok is false for a tool type
// too long for the walk to read (it then counts the tool as the API's own).
func referenceInputs(doc any) (e estimateInputs, ok bool) {
	top, isObject := doc.(map[string]any)
	if !isObject {
		referenceBlocks(&e, doc)
		return e, true
	}
	ok = true
	for key, v := range top {
		switch list, isList := v.([]any); {
		case key == "tools" && isList:
			for _, item := range list {
				ok = referenceTool(&e, item) && ok
			}
		case key == "mcp_servers" && isList:
			for _, item := range list {
				if _, isObject := item.(map[string]any); isObject {
					e.serverToolTokens += serverToolUseTokens
				}
				referenceBlocks(&e, item)
			}
		default:
			referenceBlocks(&e, v)
		}
	}
	return e, ok
}

func referenceTool(e *estimateInputs, item any) bool {
	tool, isObject := item.(map[string]any)
	if !isObject {
		referenceBlocks(e, item)
		return true
	}
	typ, isString := tool["type"].(string)
	e.addTool(toolKindOf([]byte(typ), isString), referenceCount(tool["max_uses"]), referenceCount(tool["max_content_tokens"]))
	for _, v := range tool {
		referenceBlocks(e, v)
	}
	return len(typ) <= maxNameBytes/6
}

// referenceCount reads an integer literal, 0 for anything else.
func referenceCount(v any) int64 {
	num, _ := v.(json.Number)
	n, err := strconv.ParseInt(string(num), 10, 64)
	if err != nil || n < 0 {
		return 0
	}
	return n
}

func referenceBlocks(e *estimateInputs, v any) {
	switch x := v.(type) {
	case map[string]any:
		var src sourceFacts
		if s, ok := x["source"].(map[string]any); ok {
			typ, _ := s["type"].(string)
			src.kind = sourceKindOf([]byte(typ))
			data, _ := s["data"].(string)
			src.dataBytes = int64(len(data))
		}
		typ, _ := x["type"].(string)
		e.addBlock(blockKindOf([]byte(typ)), src)
		for _, child := range x {
			referenceBlocks(e, child)
		}
	case []any:
		for _, child := range x {
			referenceBlocks(e, child)
		}
	}
}

// BenchmarkReadForAdmission compares, on the same bodies, what serveMessages
// read before a call's admission before the one-pass walk (old: decoding
// model, max_tokens and stream into a struct, then decoding the whole body
// into a tree when it held "image") and with it (new). It reports the bytes
// allocated per byte of body; B/op and ns/op of old and new give the ratios.
//
//	go test ./pkg/proxy -run '^$' -bench ReadForAdmission -benchtime 3x
func BenchmarkReadForAdmission(b *testing.B) {
	bodies := []struct {
		name string
		body []byte
	}{
		{"text-2KiB", []byte(messagesBody("claude-sonnet-4-5", 1024, false, strings.Repeat("Summarize the quarter. ", 90)))},
		{"image-30MiB", imageBody(bodySize)},
		{"blocks-30MiB", blocksBody(bodySize)},
	}
	for _, bb := range bodies {
		for _, impl := range []struct {
			name string
			read func([]byte) (messagesRequest, int64, error)
		}{{"old", oldReadForAdmission}, {"new", readForAdmission}} {
			b.Run(bb.name+"/"+impl.name, func(b *testing.B) {
				b.ReportAllocs()
				b.SetBytes(int64(len(bb.body)))
				allocated := allocatedBy(func() {
					for b.Loop() {
						if _, _, err := impl.read(bb.body); err != nil {
							b.Fatal(err)
						}
					}
				})
				b.ReportMetric(float64(allocated)/float64(b.N)/float64(len(bb.body)), "alloc/body-byte")
			})
		}
	}
}

// oldReadForAdmission is the baseline: the implementation the walk replaced,
// kept here only to measure against.
func oldReadForAdmission(body []byte) (messagesRequest, int64, error) {
	req, err := oldParseMessagesRequest(body)
	return req, oldEstimateInputTokens(body), err
}

func oldParseMessagesRequest(body []byte) (messagesRequest, error) {
	var raw struct {
		Model     *string          `json:"model"`
		MaxTokens *json.RawMessage `json:"max_tokens"`
		Stream    *bool            `json:"stream"`
	}
	if err := json.Unmarshal(body, &raw); err != nil {
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

func oldEstimateInputTokens(body []byte) int64 {
	n := int64(len(body))
	var images int64
	if bytes.Contains(body, []byte(`"image"`)) {
		var doc any
		if json.Unmarshal(body, &doc) == nil {
			var base64Bytes int64
			images, base64Bytes = oldCountImages(doc)
			n -= base64Bytes
		}
	}
	return tokensForBytes(max(n, 0)) + images*imageTokens
}

func oldCountImages(v any) (images, base64Bytes int64) {
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
			i, b := oldCountImages(child)
			images, base64Bytes = images+i, base64Bytes+b
		}
	case []any:
		for _, child := range x {
			i, b := oldCountImages(child)
			images, base64Bytes = images+i, base64Bytes+b
		}
	}
	return images, base64Bytes
}
