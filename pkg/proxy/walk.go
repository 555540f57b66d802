package proxy

import (
	"errors"
	"iter"
	"unicode/utf16"
	"unicode/utf8"
)

// maxJSONDepth bounds how deeply a request body may nest objects and arrays.
// Real requests nest a few dozen levels (a tool's input schema inside a tool
// inside the request); the bound keeps the recursive walk, and so its stack,
// small whatever a client sends.
const maxJSONDepth = 512

// maxNameBytes is the longest key or string value, as written, that the walk
// decodes to compare. Every field name and type the proxy looks for fits even
// when written entirely in \u escapes (six bytes a character, so up to 42
// characters); longer strings are validated but never copied.
const maxNameBytes = 256

var (
	errJSONSyntax   = errors.New("invalid JSON")
	errJSONTooDeep  = errors.New("JSON nested too deeply")
	errJSONTrailing = errors.New("data after the JSON value")
)

// tokenKind is the kind of a JSON value.
type tokenKind uint8

const (
	kindInvalid tokenKind = iota
	kindString
	kindNumber
	kindBool
	kindNull
	kindObject
	kindArray
)

// String names a kind as encoding/json's type errors do.
func (k tokenKind) String() string {
	return [...]string{"invalid", "string", "number", "bool", "null", "object", "array"}[k]
}

// token is a scalar the walk read. raw points into the body: a string's bytes
// between its quotes (escapes still written out), or a number's bytes.
type token struct {
	kind    tokenKind
	raw     []byte
	escaped bool // the string holds escapes: decode it before comparing
	truth   bool // the value of a bool
}

// jsonWalker reads one JSON document held in memory, validating it as it
// goes, without building a tree: callers read the members they care about
// and walk past the rest, so the walk allocates nothing however large the
// body is. Its error is sticky: after the first, every read returns at once.
type jsonWalker struct {
	data   []byte
	pos    int
	depth  int
	err    error
	keyBuf [maxNameBytes]byte
	valBuf [maxNameBytes]byte
}

func (w *jsonWalker) fail(err error) {
	if w.err == nil {
		w.err = err
	}
	w.pos = len(w.data) // every later read sees the end
}

// peek skips white space and returns the next byte, 0 at the end (a 0 byte
// in the body is never valid where a caller looks for something else).
func (w *jsonWalker) peek() byte {
	for w.pos < len(w.data) {
		switch c := w.data[w.pos]; c {
		case ' ', '\t', '\n', '\r':
			w.pos++
		default:
			return c
		}
	}
	return 0
}

// consume takes c if it comes next.
func (w *jsonWalker) consume(c byte) bool {
	if w.peek() == c && w.err == nil {
		w.pos++
		return true
	}
	return false
}

func (w *jsonWalker) expect(c byte) bool {
	if !w.consume(c) {
		w.fail(errJSONSyntax)
		return false
	}
	return true
}

// end checks that nothing but white space follows the document.
func (w *jsonWalker) end() {
	if w.peek(); w.pos < len(w.data) {
		w.fail(errJSONTrailing)
	}
}

// open enters an object or array starting with c.
func (w *jsonWalker) open(c byte) bool {
	if !w.expect(c) {
		return false
	}
	if w.depth++; w.depth > maxJSONDepth {
		w.fail(errJSONTooDeep)
		return false
	}
	return true
}

// close leaves an object or array if c, its closing bracket, comes next.
func (w *jsonWalker) close(c byte) bool {
	if w.consume(c) {
		w.depth--
		return true
	}
	return false
}

// members walks the object that comes next and yields each member's key,
// decoded (nil when longer than maxNameBytes: no key the proxy reads is). The
// key is valid until the loop body reads the member's value, which it must.
func (w *jsonWalker) members() iter.Seq[[]byte] {
	return func(yield func([]byte) bool) {
		if !w.open('{') || w.close('}') {
			return
		}
		for w.err == nil {
			if w.peek() != '"' {
				w.fail(errJSONSyntax)
				return
			}
			key := decodeName(w.str(), w.keyBuf[:0])
			if !w.expect(':') || !yield(key) || w.close('}') || !w.expect(',') {
				return
			}
		}
	}
}

// elements walks the array that comes next; the loop body reads each
// element, which it must.
func (w *jsonWalker) elements() iter.Seq[int] {
	return func(yield func(int) bool) {
		if !w.open('[') || w.close(']') {
			return
		}
		for i := 0; w.err == nil; i++ {
			if !yield(i) || w.close(']') || !w.expect(',') {
				return
			}
		}
	}
}

// scalar reads the string, number, bool or null that comes next.
func (w *jsonWalker) scalar() token {
	switch c := w.peek(); {
	case c == '"':
		return w.str()
	case c == '-' || (c >= '0' && c <= '9'):
		return w.number()
	case c == 't':
		return w.literal("true", token{kind: kindBool, truth: true})
	case c == 'f':
		return w.literal("false", token{kind: kindBool})
	case c == 'n':
		return w.literal("null", token{kind: kindNull})
	default:
		w.fail(errJSONSyntax)
		return token{}
	}
}

func (w *jsonWalker) literal(word string, t token) token {
	if len(w.data)-w.pos < len(word) || string(w.data[w.pos:w.pos+len(word)]) != word {
		w.fail(errJSONSyntax)
		return token{}
	}
	w.pos += len(word)
	return t
}

// plainByte marks the bytes a string holds as they are: not the closing
// quote, not a backslash, not a control character.
var plainByte = func() (t [256]bool) {
	for c := 0x20; c < 256; c++ {
		t[c] = c != '"' && c != '\\'
	}
	return t
}()

// str reads a string. Invalid UTF-8 is let through, as encoding/json does;
// the API refuses it.
func (w *jsonWalker) str() token {
	w.pos++ // the opening quote
	start, escaped := w.pos, false
	for {
		for w.pos < len(w.data) && plainByte[w.data[w.pos]] {
			w.pos++
		}
		if w.pos >= len(w.data) {
			w.fail(errJSONSyntax)
			return token{}
		}
		switch w.data[w.pos] {
		case '"':
			t := token{kind: kindString, raw: w.data[start:w.pos], escaped: escaped}
			w.pos++
			return t
		case '\\':
			escaped = true
			if !w.escape() {
				return token{}
			}
		default: // a control character
			w.fail(errJSONSyntax)
			return token{}
		}
	}
}

// escape checks the escape sequence at w.pos and steps past it.
func (w *jsonWalker) escape() bool {
	if w.pos+1 >= len(w.data) {
		w.fail(errJSONSyntax)
		return false
	}
	switch w.data[w.pos+1] {
	case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
		w.pos += 2
		return true
	case 'u':
		if _, ok := hex4(w.data[w.pos+2:]); ok {
			w.pos += 6
			return true
		}
	}
	w.fail(errJSONSyntax)
	return false
}

// hex4 reads the four hex digits of a \u escape.
func hex4(b []byte) (rune, bool) {
	if len(b) < 4 {
		return 0, false
	}
	var r rune
	for _, c := range b[:4] {
		switch {
		case c >= '0' && c <= '9':
			c -= '0'
		case c >= 'a' && c <= 'f':
			c -= 'a' - 10
		case c >= 'A' && c <= 'F':
			c -= 'A' - 10
		default:
			return 0, false
		}
		r = r<<4 | rune(c)
	}
	return r, true
}

// number reads a number as JSON writes it: -?(0|[1-9][0-9]*)(.[0-9]+)?([eE][+-]?[0-9]+)?
func (w *jsonWalker) number() token {
	start := w.pos
	if w.pos < len(w.data) && w.data[w.pos] == '-' {
		w.pos++
	}
	switch {
	case w.pos < len(w.data) && w.data[w.pos] == '0':
		w.pos++
	case !w.digits():
		return token{}
	}
	if w.pos < len(w.data) && w.data[w.pos] == '.' {
		w.pos++
		if !w.digits() {
			return token{}
		}
	}
	if w.pos < len(w.data) && (w.data[w.pos] == 'e' || w.data[w.pos] == 'E') {
		w.pos++
		if w.pos < len(w.data) && (w.data[w.pos] == '+' || w.data[w.pos] == '-') {
			w.pos++
		}
		if !w.digits() {
			return token{}
		}
	}
	return token{kind: kindNumber, raw: w.data[start:w.pos]}
}

// digits reads one or more decimal digits.
func (w *jsonWalker) digits() bool {
	start := w.pos
	for w.pos < len(w.data) && w.data[w.pos] >= '0' && w.data[w.pos] <= '9' {
		w.pos++
	}
	if w.pos == start {
		w.fail(errJSONSyntax)
		return false
	}
	return true
}

// decodeName returns a string token's value, decoded into buf when it holds
// escapes, or nil when t is not a string or is longer than buf: decoding
// never lengthens a string, so a name that fits raw fits decoded.
func decodeName(t token, buf []byte) []byte {
	switch {
	case t.kind != kindString || len(t.raw) > cap(buf):
		return nil
	case !t.escaped:
		return t.raw
	default:
		return appendUnescaped(buf[:0], t.raw)
	}
}

// decodeString returns a string token's value as a new string.
func decodeString(t token) string {
	if !t.escaped {
		return string(t.raw)
	}
	return string(appendUnescaped(make([]byte, 0, len(t.raw)), t.raw))
}

// appendUnescaped appends the value of a string's raw bytes (already
// validated) to dst, as encoding/json decodes it: escapes resolved, a lone
// surrogate replaced by U+FFFD.
func appendUnescaped(dst, raw []byte) []byte {
	for i := 0; i < len(raw); {
		c := raw[i]
		if c != '\\' {
			dst = append(dst, c)
			i++
			continue
		}
		switch raw[i+1] {
		case 'b':
			dst = append(dst, '\b')
		case 'f':
			dst = append(dst, '\f')
		case 'n':
			dst = append(dst, '\n')
		case 'r':
			dst = append(dst, '\r')
		case 't':
			dst = append(dst, '\t')
		case 'u':
			r, n := unescapeRune(raw[i:])
			dst = utf8.AppendRune(dst, r)
			i += n
			continue
		default: // '"', '\\', '/'
			dst = append(dst, raw[i+1])
		}
		i += 2
	}
	return dst
}

// unescapeRune decodes the \u escape at the start of b, joining a surrogate
// pair; it returns the rune and the bytes it took.
func unescapeRune(b []byte) (rune, int) {
	r, _ := hex4(b[2:])
	if !utf16.IsSurrogate(r) {
		return r, 6
	}
	if len(b) >= 12 && b[6] == '\\' && b[7] == 'u' {
		if r2, ok := hex4(b[8:]); ok {
			if pair := utf16.DecodeRune(r, r2); pair != utf8.RuneError {
				return pair, 12
			}
		}
	}
	return utf8.RuneError, 6
}
