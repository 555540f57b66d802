package dimension

import (
	"net/http"
	"strings"
	"testing"
	"time"
)

// The names below are wire formats (status, CRDs, headers, Redis, metrics): a change here
// breaks stored state and clients, so the table is pinned literally.
func TestTableIsTheWireFormat(t *testing.T) {
	want := [Count]Info{
		{"Requests", "requests", "request", "RPM", "requestsPerMinute", "requests", "requests", "rpm", false},
		{"InputTokens", "input tokens", "token", "ITPM", "inputTokensPerMinute", "input-tokens", "input_tokens", "itpm", true},
		{"OutputTokens", "output tokens", "token", "OTPM", "outputTokensPerMinute", "output-tokens", "output_tokens", "otpm", true},
	}
	for _, d := range All() {
		if d.Info() != want[d] {
			t.Errorf("%d: %+v, want %+v", d, d.Info(), want[d])
		}
	}
	if h := OutputTokens.Headers(); h != (HeaderNames{
		"Anthropic-Ratelimit-Output-Tokens-Limit", "Anthropic-Ratelimit-Output-Tokens-Remaining", "Anthropic-Ratelimit-Output-Tokens-Reset",
	}) {
		t.Errorf("output headers %+v", h)
	}
	if h := CombinedTokensHeaders(); h.Reset != "Anthropic-Ratelimit-Tokens-Reset" {
		t.Errorf("combined headers %+v", h)
	}
}

func TestEveryNameIsUniqueAndParses(t *testing.T) {
	seen := map[string]Dimension{}
	for _, d := range All() {
		i := d.Info()
		for _, name := range []string{i.Name, i.Words, i.Abbrev, i.LimitField, i.Header, i.Field, i.LimitRedisField} {
			if name == "" {
				t.Errorf("%s has an empty name: %+v", d, i)
				continue
			}
			if other, dup := seen[strings.ToLower(name)]; dup && other != d {
				t.Errorf("%q names both %s and %s", name, other, d)
			}
			seen[strings.ToLower(name)] = d
			got, err := Parse(strings.ToUpper(name))
			if err != nil || got != d {
				t.Errorf("Parse(%q) = %v, %v; want %s", name, got, err, d)
			}
		}
	}
	if _, err := Parse("cache-read-tokens"); err == nil || !strings.Contains(err.Error(), "Requests, InputTokens, OutputTokens") {
		t.Errorf("Parse of an unknown name: %v", err)
	}
}

// An index outside the table is a bug that must not pass for another dimension.
func TestUnknownDimensionPanics(t *testing.T) {
	for _, d := range []Dimension{-1, Dimension(Count)} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("Info of %d did not panic", int(d))
				}
			}()
			_ = d.Info()
		}()
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("Headers of %d did not panic", int(d))
				}
			}()
			_ = d.Headers()
		}()
		if d.Valid() || !strings.HasPrefix(d.String(), "dimension(") {
			t.Errorf("%d: Valid %v, String %q", int(d), d.Valid(), d.String())
		}
	}
	if got := Dimension(7).String(); got != "dimension(7)" {
		t.Errorf("String of 7 = %q", got)
	}
}

func TestAmounts(t *testing.T) {
	a, b := Amounts{10, 200, 3000}, Amounts{1, 2, 3}
	if got := a.Add(b); got != (Amounts{11, 202, 3003}) {
		t.Errorf("Add = %v", got)
	}
	if got := b.Sub(a); got != (Amounts{-9, -198, -2997}) || !got.AnyNegative() {
		t.Errorf("Sub = %v", got)
	}
	if a.AnyNegative() {
		t.Errorf("%v has no negative amount", a)
	}
}

func TestFormat(t *testing.T) {
	for in, want := range map[int64]string{0: "0", 999: "999", 1000: "1,000", -81000: "-81,000", 1234567: "1,234,567"} {
		if got := FormatCount(in); got != want {
			t.Errorf("FormatCount(%d) = %q, want %q", in, got, want)
		}
	}
	for in, want := range map[string]string{"1234567.25": "1,234,567.25", "-1000.5": "-1,000.5", "12": "12", "0.0045": "0.0045"} {
		if got := GroupThousands(in); got != want {
			t.Errorf("GroupThousands(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestParseHeaders(t *testing.T) {
	h := http.Header{}
	for k, v := range map[string]string{
		"anthropic-ratelimit-requests-limit":          "1000",
		"anthropic-ratelimit-requests-remaining":      " 999 ",
		"anthropic-ratelimit-requests-reset":          "2025-08-21T12:40:59Z",
		"anthropic-ratelimit-output-tokens-limit":     "16000",
		"anthropic-ratelimit-output-tokens-remaining": "lots",
		"anthropic-ratelimit-tokens-limit":            "96000",
	} {
		h.Set(k, v)
	}
	got, err := ParseHeaders(h)
	if err == nil {
		t.Fatal("want errors for the malformed and the incomplete triples")
	}
	for _, part := range []string{
		`header anthropic-ratelimit-output-tokens-remaining: "lots"`,
		`header anthropic-ratelimit-output-tokens-reset: ""`,
		`header anthropic-ratelimit-tokens-remaining: ""`,
	} {
		if !strings.Contains(err.Error(), part) {
			t.Errorf("error %q does not mention %s", err, part)
		}
	}
	if strings.Contains(err.Error(), "requests") {
		t.Errorf("error %q reports the well-formed requests triple", err)
	}
	req := got.ByDimension[Requests]
	if !req.Complete() || req.Limit != 1000 || req.Remaining != 999 || !req.Reset.Equal(time.Date(2025, 8, 21, 12, 40, 59, 0, time.UTC)) {
		t.Errorf("requests = %+v", req)
	}
	out := got.ByDimension[OutputTokens]
	if !out.Present() || out.Complete() || out.Limit != 16000 || out.Remaining != -1 {
		t.Errorf("output tokens = %+v", out)
	}
	if in := got.ByDimension[InputTokens]; in.Present() || in.Limit != -1 {
		t.Errorf("absent input tokens = %+v", in)
	}
	if c := got.CombinedTokens; !c.Present() || c.Limit != 96000 || c.Complete() {
		t.Errorf("combined tokens = %+v", c)
	}
	if _, err := ParseHeaders(http.Header{}); err != nil {
		t.Errorf("no headers: %v", err)
	}
}

func TestParseLimit(t *testing.T) {
	h := http.Header{}
	h.Set("anthropic-ratelimit-input-tokens-limit", "450000")
	h.Set("anthropic-ratelimit-output-tokens-limit", "0")
	if v, ok := InputTokens.ParseLimit(h); !ok || v != 450000 {
		t.Errorf("input limit = %d, %v", v, ok)
	}
	if _, ok := OutputTokens.ParseLimit(h); ok {
		t.Error("a zero limit must not count as reported")
	}
	if _, ok := Requests.ParseLimit(h); ok {
		t.Error("an absent limit must not count as reported")
	}
}
