package proxy

import (
	"bytes"
	"encoding/json"
)

// observedUsage is what a response said about the call's usage.
type observedUsage struct {
	// InputKnown is set once the input counts were read (a usage block, or a
	// stream's message_start).
	InputKnown bool
	// OutputKnown is set once the final output count was read (a usage
	// block, or a stream's message_delta). A stream cut before it leaves the
	// output unknown even if tokens were generated.
	OutputKnown bool
	// InputTokens is usage.input_tokens.
	InputTokens int64
	// CacheCreationInputTokens is usage.cache_creation_input_tokens.
	CacheCreationInputTokens int64
	// CacheReadInputTokens is usage.cache_read_input_tokens.
	CacheReadInputTokens int64
	// OutputTokens is usage.output_tokens.
	OutputTokens int64
	// StreamError is set when a stream carried an error event.
	StreamError bool
	// Malformed is set when a body or event that should carry usage could not
	// be read.
	Malformed bool
}

// wireUsage is the API's usage object; pointers tell absent from zero.
type wireUsage struct {
	InputTokens              *int64 `json:"input_tokens"`
	CacheCreationInputTokens *int64 `json:"cache_creation_input_tokens"`
	CacheReadInputTokens     *int64 `json:"cache_read_input_tokens"`
	OutputTokens             *int64 `json:"output_tokens"`
}

// apply copies the counts present in w; message_delta counts are cumulative,
// so a later value replaces an earlier one. Negative counts are not usage.
func (o *observedUsage) apply(w *wireUsage) bool {
	for _, p := range []*int64{w.InputTokens, w.CacheCreationInputTokens, w.CacheReadInputTokens, w.OutputTokens} {
		if p != nil && *p < 0 {
			return false
		}
	}
	if w.InputTokens != nil {
		o.InputTokens, o.InputKnown = *w.InputTokens, true
	}
	if w.CacheCreationInputTokens != nil {
		o.CacheCreationInputTokens = *w.CacheCreationInputTokens
	}
	if w.CacheReadInputTokens != nil {
		o.CacheReadInputTokens = *w.CacheReadInputTokens
	}
	if w.OutputTokens != nil {
		o.OutputTokens = *w.OutputTokens
	}
	return true
}

// usageFromMessage reads the usage of a complete non-streaming response
// body. Anything it cannot read leaves the usage unknown and Malformed set.
func usageFromMessage(body []byte) observedUsage {
	var msg struct {
		Usage *wireUsage `json:"usage"`
	}
	var o observedUsage
	if err := json.Unmarshal(body, &msg); err != nil || msg.Usage == nil ||
		msg.Usage.InputTokens == nil || msg.Usage.OutputTokens == nil || !o.apply(msg.Usage) {
		return observedUsage{Malformed: true}
	}
	o.OutputKnown = true
	return o
}

// sseEvent names the events whose data the tracker reads.
type sseEvent int

const (
	// sseUnnamed is an event without an event line (yet): its data's type
	// field names it.
	sseUnnamed sseEvent = iota
	sseOther
	sseMessageStart
	sseMessageDelta
	sseError
)

// maxEventData bounds the data kept of one event; usage-bearing events are
// small, and a larger one is counted as malformed rather than buffered.
const maxEventData = 1 << 20

// sseTracker follows a server-sent event stream line by line and keeps the
// usage of message_start and message_delta. It never fails: unreadable
// events only set Malformed.
type sseTracker struct {
	usage   observedUsage
	event   sseEvent
	data    []byte
	partial []byte // an incomplete line carried over between reads
	tooLong bool   // the current line or event data overflowed maxEventData
}

// feed takes the next chunk of a line; complete is set when chunk ends the
// line (with its newline). Chunks of one line arrive in order.
func (t *sseTracker) feed(chunk []byte, complete bool) {
	if !complete || len(t.partial) > 0 {
		if len(t.partial)+len(chunk) > maxEventData {
			t.tooLong = true
		} else {
			t.partial = append(t.partial, chunk...)
		}
		if !complete {
			return
		}
		chunk, t.partial = t.partial, t.partial[:0]
	}
	t.line(bytes.TrimRight(chunk, "\r\n"))
}

// line handles one complete line without its line ending.
func (t *sseTracker) line(l []byte) {
	if len(l) == 0 {
		t.dispatch()
		return
	}
	field, value, _ := bytes.Cut(l, []byte(":"))
	value = bytes.TrimPrefix(value, []byte(" "))
	switch string(field) {
	case "event":
		t.event = eventKind(value)
	case "data":
		if t.event == sseOther {
			return
		}
		if len(t.data)+len(value)+1 > maxEventData {
			t.tooLong = true
			return
		}
		if len(t.data) > 0 {
			t.data = append(t.data, '\n')
		}
		t.data = append(t.data, value...)
	}
}

func eventKind(name []byte) sseEvent {
	switch string(name) {
	case "message_start":
		return sseMessageStart
	case "message_delta":
		return sseMessageDelta
	case errorEnvelope:
		return sseError
	default:
		return sseOther
	}
}

// dispatch ends an event at its blank line.
func (t *sseTracker) dispatch() {
	kind, data, tooLong := t.event, t.data, t.tooLong
	t.event, t.data, t.tooLong = sseUnnamed, t.data[:0], false
	if kind == sseOther || (len(data) == 0 && !tooLong) {
		return
	}
	if tooLong {
		t.usage.Malformed = true
		return
	}
	var ev struct {
		Type    string `json:"type"`
		Message *struct {
			Usage *wireUsage `json:"usage"`
		} `json:"message"`
		Usage *wireUsage `json:"usage"`
	}
	if err := json.Unmarshal(data, &ev); err != nil {
		t.usage.Malformed = true
		return
	}
	if kind == sseUnnamed { // A stream without event lines still has typed data.
		kind = eventKind([]byte(ev.Type))
	}
	switch kind {
	case sseMessageStart:
		if ev.Message == nil || ev.Message.Usage == nil || ev.Message.Usage.InputTokens == nil || !t.usage.apply(ev.Message.Usage) {
			t.usage.Malformed = true
		}
	case sseMessageDelta:
		if ev.Usage == nil || ev.Usage.OutputTokens == nil || !t.usage.apply(ev.Usage) {
			t.usage.Malformed = true
			return
		}
		t.usage.OutputKnown = true
	case sseError:
		t.usage.StreamError = true
	}
}
