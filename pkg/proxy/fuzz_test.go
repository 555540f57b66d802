package proxy

import (
	"bytes"
	"io"
	"testing"
)

// FuzzUpstreamBodies feeds arbitrary bytes to everything that reads network
// input: a stream must pass through byte for byte and nothing may panic or
// claim usage it did not read.
//
//	go test ./pkg/proxy -run '^$' -fuzz FuzzUpstreamBodies -fuzztime 10s
func FuzzUpstreamBodies(f *testing.F) {
	f.Add([]byte(sampleStream))
	f.Add([]byte(okMessageForFuzz))
	f.Add([]byte("event: message_delta\ndata: {\"usage\":{\"output_tokens\":-5}}\n\n"))
	f.Add([]byte("data: \r\n\r\nevent:\n:\n\n"))
	f.Add([]byte(`{"model":"m","max_tokens":9,"messages":[{"type":"image","source":{"type":"base64","data":"QUJD"}}]}`))
	f.Fuzz(func(t *testing.T, in []byte) {
		var out bytes.Buffer
		res := copyEventStream(&out, noFlush{}, bytes.NewReader(in), nil, 0)
		if !bytes.Equal(out.Bytes(), in) || res.UpstreamErr != nil || res.ClientErr != nil {
			t.Fatalf("stream not passed through: %q -> %q (%+v)", in, out.Bytes(), res)
		}
		u := res.Usage
		if u.InputTokens < 0 || u.OutputTokens < 0 || u.CacheReadInputTokens < 0 || u.CacheCreationInputTokens < 0 {
			t.Fatalf("negative usage %+v from %q", u, in)
		}
		m := usageFromMessage(in)
		if m.OutputKnown != m.InputKnown || (m.Malformed && m.OutputKnown) {
			t.Fatalf("inconsistent usage %+v from %q", m, in)
		}
		if req, err := parseMessagesRequest(in); err == nil && (req.MaxTokens < 1 || req.Model == "") {
			t.Fatalf("accepted %+v from %q", req, in)
		}
		if est := EstimateInputTokens(in); est < 0 {
			t.Fatalf("negative estimate %d for %q", est, in)
		}
		var plain bytes.Buffer
		if r := copyMessage(&plain, io.LimitReader(bytes.NewReader(in), int64(len(in))), int64(len(in)), 64, true); !bytes.Equal(plain.Bytes(), in) || r.UpstreamErr != nil {
			t.Fatalf("message not passed through: %q", in)
		}
	})
}

const okMessageForFuzz = `{"id":"msg_1","type":"message","usage":{"input_tokens":12,"output_tokens":6}}`
