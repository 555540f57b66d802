package ratelimit

import (
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/claudecap/claudecap/pkg/dimension"
)

func TestPoolKeyValidate(t *testing.T) {
	for _, tc := range []struct {
		key PoolKey
		ok  bool
	}{
		{PoolKey{"acme-prod", "sonnet"}, true},
		{PoolKey{"a.b_c", "claude-haiku-4"}, true},
		{PoolKey{"", "sonnet"}, false},
		{PoolKey{"acme", ""}, false},
		{PoolKey{"ac}me", "sonnet"}, false},
		{PoolKey{"acme", "son{net"}, false},
		{PoolKey{"acme:x", "sonnet"}, false},
		{PoolKey{"acme prod", "sonnet"}, false},
		// A private pool: a 63-character namespace, a dot and a 253-character name.
		{PoolKey{strings.Repeat("n", 63) + "." + strings.Repeat("a", 253), "sonnet"}, true},
		{PoolKey{strings.Repeat("a", 321), "sonnet"}, false},
	} {
		err := tc.key.Validate()
		if (err == nil) != tc.ok {
			t.Errorf("%#v.Validate() = %v, want ok=%v", tc.key, err, tc.ok)
		}
	}
	for _, w := range []string{"", "a b", "x{y}", strings.Repeat("w", 254)} {
		if ValidateWorkload(w) == nil {
			t.Errorf("ValidateWorkload(%q) accepted a bad name", w)
		}
	}
	if err := ValidateWorkload("ai/summarizer"); err != nil {
		t.Errorf("ValidateWorkload(ai/summarizer) = %v", err)
	}
}

func TestEveryKeyCarriesThePoolHashTag(t *testing.T) {
	p := PoolKey{"acme", "sonnet"}
	keys := []string{
		p.bucketKey(), p.allocKey(), p.workloadsKey(),
		p.usageKey("ai/w"), p.podsKey("ai/w"), p.upstreamKey(),
	}
	seen := map[string]bool{}
	for _, k := range keys {
		// Redis Cluster hashes only the text between the first { and the
		// first } after it.
		open := strings.Index(k, "{")
		end := strings.Index(k[open:], "}")
		if open != 0 || k[open+1:open+end] != "ccap:acme:sonnet" {
			t.Errorf("key %q does not start with hash tag {ccap:acme:sonnet}", k)
		}
		if seen[k] {
			t.Errorf("key %q used twice", k)
		}
		seen[k] = true
	}
}

func TestParseReplyRejectsMalformed(t *testing.T) {
	for _, v := range []any{
		nil, "x", int64(1), []any{int64(1)},
		[]any{int64(1), "now", int64(0), int64(0), int64(0), int64(0)},
		[]any{int64(1), int64(2), int64(3)},
	} {
		if _, err := parseReply(v); err == nil {
			t.Errorf("parseReply(%#v) accepted a malformed reply", v)
		}
	}
	r, err := parseReply([]any{int64(0), int64(1_700_000_000_000_000), int64(7), int64(1), int64(2), int64(3), int64(0), int64(5_000), int64(2_000)})
	if err != nil {
		t.Fatal(err)
	}
	e := refusal(PoolKey{"o", "c"}, r)
	if e.Binding != dimension.InputTokens || e.RetryAfter() != 5*time.Millisecond || e.Wait[dimension.OutputTokens] != 2*time.Millisecond {
		t.Errorf("refusal = %+v, want binding InputTokens after 5ms", e)
	}
	if !errors.Is(e, ErrRateLimited) || errors.Is(e, ErrExceedsLimit) {
		t.Errorf("refusal %v: wrong errors.Is", e)
	}
	r.status, r.waits = statusTooLarge, [3]int64{0, 0, -1}
	e = refusal(PoolKey{"o", "c"}, r)
	if !e.TooLarge || e.Binding != dimension.OutputTokens || !errors.Is(e, ErrExceedsLimit) {
		t.Errorf("too-large refusal = %+v, want OutputTokens too large", e)
	}
}

func TestLocalBucketStartsEmptyRefillsAndIsAllOrNothing(t *testing.T) {
	t0 := time.Unix(1000, 0)
	b := newEmptyBucket(Limits{60, 600, 120}, t0) // Refill 1 req, 10 in, 2 out per second.

	taken, waits, _ := b.take(Amounts{1, 10, 2}, t0)
	if taken || waits != [3]time.Duration{time.Second, time.Second, time.Second} {
		t.Fatalf("empty bucket: taken=%v waits=%v, want refused with 1s waits", taken, waits)
	}
	taken, _, _ = b.take(Amounts{1, 10, 2}, t0.Add(time.Second))
	if !taken {
		t.Fatalf("after 1s the bucket should hold one call")
	}
	// 10 s later: 10 requests, 100 input, 20 output. Output binds a 30-token call.
	taken, waits, _ = b.take(Amounts{1, 10, 30}, t0.Add(11*time.Second))
	if taken || waits[dimension.OutputTokens] != 5*time.Second || waits[dimension.Requests] != 0 {
		t.Fatalf("output-bound call: taken=%v waits=%v, want wait 5s on output only", taken, waits)
	}
	if b.level[dimension.Requests] != 10 || b.level[dimension.InputTokens] != 100 {
		t.Fatalf("a refused call took something: levels %v", b.level)
	}
	_, _, large := b.take(Amounts{61, 0, 0}, t0.Add(11*time.Second))
	if !large[dimension.Requests] {
		t.Fatalf("a cost above capacity must be reported too large")
	}
	b.give(Amounts{0, 0, -50}, t0.Add(11*time.Second))
	if b.level[dimension.OutputTokens] != -30 {
		t.Fatalf("debt: output level %v, want -30", b.level[dimension.OutputTokens])
	}
	b.give(Amounts{1000, 0, 0}, t0.Add(11*time.Second))
	if b.level[dimension.Requests] != 60 {
		t.Fatalf("refund above capacity: level %v, want capped at 60", b.level[dimension.Requests])
	}
}

func TestShareOf(t *testing.T) {
	cfg := PoolConfig{
		Limits:      Limits{1000, 90000, 30000},
		Allocations: map[string]Limits{"ai/a": {300, 30000, 9000}},
	}
	for _, tc := range []struct {
		name         string
		workload     string
		wPods, pPods int
		want         Limits
	}{
		{"allocation split across workload pods", "ai/a", 3, 10, Limits{100, 10000, 3000}},
		{"no allocation: pool split across pool pods", "ai/b", 3, 10, Limits{100, 9000, 3000}},
		{"unknown pod count counts this pod", "ai/a", 0, 0, Limits{300, 30000, 9000}},
		{"no workload: pool split", "", 0, 4, Limits{250, 22500, 7500}},
	} {
		if got := shareOf(cfg, tc.workload, tc.wPods, tc.pPods); got != tc.want {
			t.Errorf("%s: shareOf = %+v, want %+v", tc.name, got, tc.want)
		}
	}
}

func TestDecodePoolConfig(t *testing.T) {
	if _, err := decodePoolConfig(nil, nil); !errors.Is(err, ErrPoolNotConfigured) {
		t.Errorf("empty limits: %v, want ErrPoolNotConfigured", err)
	}
	_, err := decodePoolConfig(map[string]string{"rpm": "10", "itpm": "-1", "otpm": "x"}, map[string]string{"w": "{"})
	for _, want := range []string{"itpm", "otpm", "allocation of w"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("malformed config error %v does not mention %s", err, want)
		}
	}
}

func TestParseUpstreamHeaders(t *testing.T) {
	h := http.Header{}
	for k, v := range map[string]string{
		"anthropic-ratelimit-input-tokens-limit":      "80000",
		"anthropic-ratelimit-input-tokens-remaining":  "79000",
		"anthropic-ratelimit-input-tokens-reset":      "2025-08-21T12:40:59Z",
		"anthropic-ratelimit-output-tokens-limit":     "16000",
		"anthropic-ratelimit-output-tokens-remaining": "16000",
		"anthropic-ratelimit-output-tokens-reset":     "2025-08-21T12:41:00Z",
		"anthropic-ratelimit-requests-limit":          "1000",
		"anthropic-ratelimit-requests-remaining":      "999",
		"anthropic-ratelimit-requests-reset":          "2025-08-21T12:40:59Z",
		"retry-after":                                 "7",
	} {
		h.Set(k, v)
	}
	u, err := ParseUpstreamHeaders(h, http.StatusTooManyRequests)
	if err != nil {
		t.Fatal(err)
	}
	wantReset := time.Date(2025, 8, 21, 12, 40, 59, 0, time.UTC)
	if !u.Buckets[dimension.InputTokens].Known || u.Buckets[dimension.InputTokens].Limit != 80000 || u.Buckets[dimension.InputTokens].Remaining != 79000 || !u.Buckets[dimension.InputTokens].Reset.Equal(wantReset) {
		t.Errorf("input tokens = %+v", u.Buckets[dimension.InputTokens])
	}
	if u.Buckets[dimension.Requests].Remaining != 999 || u.Buckets[dimension.OutputTokens].Limit != 16000 || u.Tokens.Known {
		t.Errorf("parsed %+v; tokens-* was absent and must stay unknown", u)
	}
	if u.RetryAfter != 7*time.Second || u.Status != 429 {
		t.Errorf("retry-after %s status %d", u.RetryAfter, u.Status)
	}

	h.Set("anthropic-ratelimit-requests-remaining", "lots")
	h.Set("retry-after", "-3")
	u, err = ParseUpstreamHeaders(h, 200)
	if err == nil || !strings.Contains(err.Error(), "requests-remaining") || !strings.Contains(err.Error(), "retry-after") {
		t.Fatalf("malformed headers: err = %v", err)
	}
	if u.Buckets[dimension.Requests].Known || !u.Buckets[dimension.InputTokens].Known {
		t.Errorf("a malformed bucket must stay unknown and the others parse: %+v", u)
	}
}

func TestDecodeWindowUsageRejectsMalformed(t *testing.T) {
	for _, v := range []any{nil, []any{int64(1)}, []any{int64(1), int64(2), int64(3), int64(4), int64(5), int64(6), int64(7), "8"}} {
		if _, err := decodeWindowUsage(v); err == nil {
			t.Errorf("decodeWindowUsage(%#v) accepted a malformed reply", v)
		}
	}
}

func TestDecodeBucketRejectsWrongSize(t *testing.T) {
	if _, err := decodeBucket(make([]byte, 63)); err == nil {
		t.Fatalf("decodeBucket accepted 63 bytes")
	}
}
