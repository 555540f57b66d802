package proxy

import (
	"bytes"
	"errors"
	"fmt"
)

// Estimation constants; docs/proxy.md states the rule. Settlement replaces
// every estimate with the API's count, so these only have to keep a call from
// reserving far less than it will cost until then.
const (
	// bytesPerToken is deliberately low: English text averages about four
	// bytes per token and JSON syntax counts too, so bytes/3 over-estimates
	// the prompt (a reservation may be too large, never too small, for text).
	bytesPerToken = 3
	// imageTokens is charged per image block instead of its base64 bytes:
	// the API resizes images to about 1.15 megapixels, about 1,600 tokens at
	// most (width*height/750). It is also the allowance of an image given by
	// url or file id, whose bytes are not in the body: the API resizes a
	// fetched or stored image the same way, so no image costs more.
	imageTokens = 1600
	// documentPageTokens is what a PDF page costs: the API reads each page
	// both as an image (up to imageTokens) and as its extracted text; pages
	// of dense text have been measured at 2,100-2,500 tokens.
	documentPageTokens = 2500
	// referencedDocumentPages is the page budget of a document given by url
	// or file id, whose size the proxy cannot see. Ten pages cover most
	// attachments while keeping such a call admittable on the smallest
	// pools (30,000 input tokens per minute at tier 1); a larger document
	// is corrected at settlement.
	referencedDocumentPages = 10
	// referencedDocumentTokens is the allowance of one such document.
	referencedDocumentTokens = referencedDocumentPages * documentPageTokens
	// anthropicToolTokens is charged per tool the API defines itself (a tool
	// with a "type": bash, text editor, computer use, web search, ...): the
	// request only names it, the API adds its definition and instructions to
	// the prompt. Computer use, the largest, adds about 1,200 tokens.
	anthropicToolTokens = 1500
	// serverToolUseTokens is the allowance per use of a tool the API runs
	// itself (web search, web fetch, code execution, tool search, an MCP
	// server): what each use returns is added to the input while the call
	// runs. A page of search results or an average fetched page is a few
	// thousand tokens; a long page or a PDF is more, and is corrected at
	// settlement.
	serverToolUseTokens = 10000
	// serverToolMaxUses caps the uses assumed from a tool's max_uses, so a
	// large max_uses cannot by itself make a call impossible to admit; a tool
	// without max_uses is assumed to be used once.
	serverToolMaxUses = 10
	// maxFetchTokens caps web fetch's max_content_tokens, the size each fetch
	// is truncated to, at the largest context window.
	maxFetchTokens = 1_000_000
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

// parseMessagesRequest reads model, max_tokens and stream.
func parseMessagesRequest(body []byte) (messagesRequest, error) {
	req, _, err := scanMessagesRequest(body)
	return req, err
}

// EstimateInputTokens is the proxy's conservative input-token estimate of a
// Messages API request body: ceil(bytes/3) of the whole JSON body, except
// that each image block counts 1,600 tokens instead of its base64 bytes, plus
// allowances for what the API adds that the body does not hold (documents
// and images given by url or file id, the definitions of tools the API
// defines, the results of tools it runs). Settlement replaces the estimate
// with the real count afterwards, so over-estimating only delays a call;
// under-estimating could let the pool over-commit, which is why JSON syntax,
// tool schemas and system prompts are all counted as if they were text. A
// body that is not JSON counts its bytes.
func EstimateInputTokens(body []byte) int64 {
	w := walkRequest(body)
	if w.err != nil {
		return tokensForBytes(int64(len(body)))
	}
	return w.est.tokens()
}

// scanMessagesRequest reads, in one pass over the body, what admission needs:
// model (a non-empty string), max_tokens (an integer of at least 1), stream
// (a bool) and the input estimate. Other fields are the API's business; only
// what the reservation needs is checked here.
//
// Keys match exactly, as the API matches them (not case-insensitively, as
// encoding/json would). A duplicated key takes its last value, as the API's
// JSON parser (like Go's and most others) does; max_tokens alone reserves the
// largest valid value of any duplicate, so that a disagreement about which
// one counts can only over-reserve.
func scanMessagesRequest(body []byte) (messagesRequest, int64, error) {
	w := walkRequest(body)
	switch {
	case errors.Is(w.err, errJSONTooDeep):
		return messagesRequest{}, 0, &requestError{fmt.Sprintf("request body nests deeper than %d levels", maxJSONDepth)}
	case w.err != nil:
		return messagesRequest{}, 0, &requestError{"request body is not valid JSON"}
	case w.notObject:
		return messagesRequest{}, 0, &requestError{"request body must be a JSON object"}
	case w.typeErr != nil:
		return messagesRequest{}, 0, w.typeErr
	case w.model == "":
		return messagesRequest{}, 0, &requestError{"model: Field required"}
	case !w.maxTokens.present:
		return messagesRequest{}, 0, &requestError{"max_tokens: Field required"}
	case !w.maxTokens.valid:
		return messagesRequest{}, 0, &requestError{"max_tokens: must be an integer of at least 1"}
	}
	return messagesRequest{Model: w.model, MaxTokens: w.maxTokens.largest, Stream: w.stream}, w.est.tokens(), nil
}

// requestWalker walks a request body once, keeping the fields admission
// reads and the inputs of the estimate.
type requestWalker struct {
	jsonWalker
	notObject bool
	typeErr   error // the first field of a wrong JSON type
	model     string
	maxTokens maxTokensField
	stream    bool
	est       estimateInputs
}

// maxTokensField follows max_tokens through duplicates.
type maxTokensField struct {
	present bool  // the last value is not null
	valid   bool  // the last value is an integer of at least 1
	largest int64 // the largest valid value of any duplicate
}

func walkRequest(body []byte) *requestWalker {
	w := &requestWalker{jsonWalker: jsonWalker{data: body}}
	w.est.bodyBytes = int64(len(body))
	if w.peek() == '{' {
		w.request()
	} else {
		w.value()
		w.notObject = true
	}
	w.end()
	return w
}

// request walks the top-level object.
func (w *requestWalker) request() {
	for key := range w.members() {
		switch string(key) {
		case "model":
			w.readModel(w.value())
		case "max_tokens":
			w.readMaxTokens(w.value())
		case "stream":
			w.readStream(w.value())
		case "tools":
			w.tools()
		case "mcp_servers":
			w.mcpServers()
		default:
			w.value()
		}
	}
}

func (w *requestWalker) readModel(t token) {
	switch t.kind {
	case kindString:
		w.model = decodeString(t)
	case kindNull: // as if absent, as encoding/json reads a null
		w.model = ""
	default:
		w.wrongType("model", t.kind)
	}
}

func (w *requestWalker) readMaxTokens(t token) {
	if t.kind == kindNull {
		w.maxTokens.present, w.maxTokens.valid = false, false
		return
	}
	n, ok := intLiteral(t)
	w.maxTokens.present, w.maxTokens.valid = true, ok && n >= 1
	if w.maxTokens.valid {
		w.maxTokens.largest = max(w.maxTokens.largest, n)
	}
}

func (w *requestWalker) readStream(t token) {
	switch t.kind {
	case kindBool:
		w.stream = t.truth
	case kindNull:
		w.stream = false
	default:
		w.wrongType("stream", t.kind)
	}
}

func (w *requestWalker) wrongType(field string, got tokenKind) {
	if w.typeErr == nil {
		w.typeErr = &requestError{fmt.Sprintf("%s: wrong type, got JSON %s", field, got)}
	}
}

// value walks the next value; objects anywhere are read as content blocks.
// A scalar is returned, a container as its kind alone.
func (w *requestWalker) value() token {
	switch w.peek() {
	case '{':
		w.block()
		return token{kind: kindObject}
	case '[':
		for range w.elements() {
			w.value()
		}
		return token{kind: kindArray}
	default:
		return w.scalar()
	}
}

// name reads the next value as a name to compare: ok is set for a string,
// whose decoded value comes back unless it is too long to be a name.
func (w *requestWalker) name() (name []byte, ok bool) {
	if w.peek() != '"' {
		w.value()
		return nil, false
	}
	return decodeName(w.str(), w.valBuf[:0]), true
}

// count reads a non-negative integer; anything else is 0.
func (w *requestWalker) count() int64 {
	n, ok := intLiteral(w.value())
	if !ok || n < 0 {
		return 0
	}
	return n
}

// keyType is the member that says what a block, source or tool is.
const keyType = "type"

// blockKind is what a content block's type says about its cost.
type blockKind uint8

const (
	blockOther blockKind = iota
	blockImage
	blockDocument
)

// sourceKind is where an image's or document's content comes from.
type sourceKind uint8

const (
	sourceOther sourceKind = iota // none, or carried in the body as text or blocks
	sourceBase64
	sourceURL  // the API fetches it
	sourceFile // the API loads it from the Files API
)

// sourceFacts is what the walk keeps of a block's source.
type sourceFacts struct {
	kind      sourceKind
	dataBytes int64 // the bytes of its data, as written
}

// block walks an object that may be a content block and adds it to the
// estimate. Its members may come in any order and the last of a duplicated
// key counts, so the block is judged at its end.
func (w *requestWalker) block() {
	var kind blockKind
	var src sourceFacts
	for key := range w.members() {
		switch string(key) {
		case keyType:
			name, _ := w.name()
			kind = blockKindOf(name)
		case "source":
			src = w.source()
		default:
			w.value()
		}
	}
	w.est.addBlock(kind, src)
}

func blockKindOf(name []byte) blockKind {
	switch string(name) {
	case "image":
		return blockImage
	case "document":
		return blockDocument
	default:
		return blockOther
	}
}

// source walks a block's source.
func (w *requestWalker) source() sourceFacts {
	var s sourceFacts
	if w.peek() != '{' {
		w.value()
		return s
	}
	for key := range w.members() {
		switch string(key) {
		case keyType:
			name, _ := w.name()
			s.kind = sourceKindOf(name)
		case "data":
			s.dataBytes = 0
			if t := w.value(); t.kind == kindString {
				s.dataBytes = int64(len(t.raw))
			}
		default:
			w.value()
		}
	}
	return s
}

func sourceKindOf(name []byte) sourceKind {
	switch string(name) {
	case "base64":
		return sourceBase64
	case "url":
		return sourceURL
	case "file":
		return sourceFile
	default:
		return sourceOther
	}
}

// toolKind is what a tool's type says about its cost.
type toolKind uint8

const (
	toolCustom    toolKind = iota // defined by the request: its bytes are its cost
	toolAnthropic                 // defined by the API, run by the client
	toolServer                    // defined and run by the API
	toolWebFetch                  // a server tool bounded by max_content_tokens
)

// serverToolPrefixes are the type names of the tools the API runs itself,
// before their version date.
var serverToolPrefixes = [][]byte{[]byte("web_search_"), []byte("code_execution_"), []byte("tool_search_tool_"), []byte("mcp_toolset")}

func toolKindOf(name []byte, isString bool) toolKind {
	switch {
	case !isString || string(name) == "custom":
		return toolCustom
	case bytes.HasPrefix(name, []byte("web_fetch_")):
		return toolWebFetch
	}
	for _, p := range serverToolPrefixes {
		if bytes.HasPrefix(name, p) {
			return toolServer
		}
	}
	return toolAnthropic // including types too long to read: the API knows them
}

// tools walks the top-level tools list.
func (w *requestWalker) tools() {
	if w.peek() != '[' {
		w.value()
		return
	}
	for range w.elements() {
		if w.peek() != '{' {
			w.value()
			continue
		}
		kind, maxUses, maxContent := toolCustom, int64(0), int64(0)
		for key := range w.members() {
			switch string(key) {
			case keyType:
				kind = toolKindOf(w.name())
			case "max_uses":
				maxUses = w.count()
			case "max_content_tokens":
				maxContent = w.count()
			default:
				w.value()
			}
		}
		w.est.addTool(kind, maxUses, maxContent)
	}
}

// mcpServers walks the top-level mcp_servers list: the API lists each
// server's tools in the prompt and calls them itself.
func (w *requestWalker) mcpServers() {
	if w.peek() != '[' {
		w.value()
		return
	}
	for range w.elements() {
		if w.peek() == '{' {
			w.est.serverToolTokens += serverToolUseTokens
		}
		w.value()
	}
}

// estimateInputs is what the estimate counts, gathered by the walk.
type estimateInputs struct {
	bodyBytes int64
	// inlineImageBytes are the base64 bytes of images, which count as
	// imageTokens each instead.
	inlineImageBytes    int64
	images              int64
	referencedDocuments int64
	anthropicTools      int64
	serverToolTokens    int64
}

func (e *estimateInputs) addBlock(kind blockKind, src sourceFacts) {
	switch kind {
	case blockImage:
		e.images++
		if src.kind == sourceBase64 {
			e.inlineImageBytes += src.dataBytes
		}
	case blockDocument:
		if src.kind == sourceURL || src.kind == sourceFile {
			e.referencedDocuments++
		}
	}
}

func (e *estimateInputs) addTool(kind toolKind, maxUses, maxContentTokens int64) {
	if kind == toolCustom {
		return
	}
	e.anthropicTools++
	if kind == toolAnthropic {
		return
	}
	perUse := int64(serverToolUseTokens)
	if kind == toolWebFetch && maxContentTokens > 0 {
		perUse = min(maxContentTokens, maxFetchTokens)
	}
	uses := int64(1)
	if maxUses > 0 {
		uses = min(maxUses, serverToolMaxUses)
	}
	e.serverToolTokens += uses * perUse
}

func (e estimateInputs) tokens() int64 {
	text := max(e.bodyBytes-e.inlineImageBytes, 0)
	return tokensForBytes(text) + e.images*imageTokens + e.referencedDocuments*referencedDocumentTokens +
		e.anthropicTools*anthropicToolTokens + e.serverToolTokens
}

// intLiteral reads an integer written without fraction or exponent, as
// encoding/json requires for an int64; false for anything else or overflow.
func intLiteral(t token) (int64, bool) {
	b := t.raw
	if t.kind != kindNumber || len(b) == 0 {
		return 0, false
	}
	neg := b[0] == '-'
	if neg {
		b = b[1:]
	}
	var n int64
	for _, c := range b {
		if c < '0' || c > '9' || n > (1<<63-1-int64(c-'0'))/10 {
			return 0, false
		}
		n = n*10 + int64(c-'0')
	}
	if neg {
		n = -n
	}
	return n, true
}

// tokensForBytes is ceil(n / bytesPerToken).
func tokensForBytes(n int64) int64 { return (n + bytesPerToken - 1) / bytesPerToken }
