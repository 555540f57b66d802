package limits

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
	"strings"
	"time"

	"github.com/anthropics/anthropic-sdk-go/v2"

	"github.com/claudecap/claudecap/pkg/mockapi"
)

// The model every call uses and its rate-limit class.
const (
	model = "claude-sonnet-4-6"
	class = "sonnet-4"
)

// The mock's token rule (pkg/mockapi/tokens.go): ceil(bytes/4) per text, 3 per message,
// 1,600 per image. Scenarios use it to know what each call costs before sending it.
const (
	bytesPerToken   = 4
	messageOverhead = 3
	imageTokens     = 1600
)

// Load shape shared by the steady scenarios.
const (
	// overload is the offered load as a multiple of the binding limit.
	overload = 3.0
	// warmupOverload and warmupFor empty the buckets before the steady state: every bucket
	// starts full with a minute of capacity, which 3x drains in 30 s, 7x in 10 s.
	warmupOverload = 7.0
	warmupFor      = 10 * time.Second
)

// Tier-like mock limits of the class.
var (
	tier2 = mockapi.Limits{RequestsPerMinute: 1000, InputTokensPerMinute: 450_000, OutputTokensPerMinute: 90_000}
	tier3 = mockapi.Limits{RequestsPerMinute: 2000, InputTokensPerMinute: 800_000, OutputTokensPerMinute: 160_000}
	// reproLimits are those of the long-stream reproduction.
	reproLimits = mockapi.Limits{RequestsPerMinute: 500, InputTokensPerMinute: 400_000, OutputTokensPerMinute: 20_000}
)

// span is a stretch of a row's timeline, from the row's origin.
type span struct {
	start, length time.Duration
}

func (s span) end() time.Duration { return s.start + s.length }

// variant is one kind of call a scenario sends.
type variant struct {
	name   string
	weight float64
	params anthropic.MessageNewParams
	// input is what the mock charges against ITPM per call once caches are warm.
	input float64
}

// scenario is one traffic pattern with the mock it runs against.
type scenario struct {
	name  string
	about string
	// limits are the mock's (the API's) limits of the class.
	limits  mockapi.Limits
	output  mockapi.Distribution
	latency mockapi.Latency
	// mix is the rated traffic: Poisson arrivals at overload x the binding limit, drawn by
	// weight, every other call streaming.
	mix []variant
	// opening calls are sent once at the origin, all streaming.
	opening []variant
	// mixFrom is when the rated traffic starts.
	mixFrom time.Duration
	// warmup runs the rated traffic at warmupOverload for warmupFor first.
	warmup bool
	// window is the steady-state window of the shares.
	window span
	// outage, when set, stops Redis at its start and restarts it (empty) at its end.
	outage *span
}

// variants is every call of the scenario, the rated mix first: a call is named by its index
// here.
func (sc *scenario) variants() []variant {
	return append(append([]variant(nil), sc.mix...), sc.opening...)
}

// paramsOf is the requests of the variants, in order.
func paramsOf(vs []variant) []anthropic.MessageNewParams {
	out := make([]anthropic.MessageNewParams, len(vs))
	for i, v := range vs {
		out[i] = v.params
	}
	return out
}

// scenarios is the suite, in report order.
func scenarios() []*scenario {
	fast := mockapi.Latency{TimeToFirstToken: mockapi.Fixed(0.2), PerToken: mockapi.Fixed(0.004), TokensPerDelta: 3}
	steady := span{start: warmupFor + 5*time.Second, length: 30 * time.Second}
	outputMix := []variant{textCall("medium-text", 1, 800, 200)}
	return []*scenario{
		{
			name:   "steady-requests",
			about:  "steady short calls (400-byte prompt, 10-30 output tokens): requests bind",
			limits: tier2, output: uniform(10, 30), latency: fast,
			mix:    []variant{textCall("short-text", 1, 400, 64)},
			warmup: true, window: steady,
		},
		{
			name:   "steady-output",
			about:  "steady calls of 100-200 output tokens (max_tokens 200): output tokens bind",
			limits: tier2, output: uniform(100, 200), latency: fast,
			mix:    outputMix,
			warmup: true, window: steady,
		},
		{
			name: "long-streams",
			about: "4 streams (max_tokens 4096, 3,000-4,000 tokens at 10 ms each) into an idle pool, " +
				"then short calls (max_tokens 90) at 3x OTPM from 45 s",
			limits: reproLimits, output: uniform(3000, 4000),
			latency: mockapi.Latency{TimeToFirstToken: mockapi.Fixed(0.2), PerToken: mockapi.Fixed(0.01), TokensPerDelta: 1},
			opening: []variant{
				textCall("long-stream", 1, 400, 4096), textCall("long-stream", 1, 400, 4096),
				textCall("long-stream", 1, 400, 4096), textCall("long-stream", 1, 400, 4096),
			},
			mix:     []variant{textCall("short-call", 1, 200, 90)},
			mixFrom: 45 * time.Second,
			// The burst drains a full pool in 30 s (3x in, 1x refilled), a few more with
			// Poisson arrivals: the pool is full at 45 s under the reserved rule.
			window: span{start: 80 * time.Second, length: 30 * time.Second},
		},
		{
			name:   "mixed-cached",
			about:  "half the calls read one of 4 cached 4,000-token system prompts, half send 1,500 uncached tokens: input tokens bind",
			limits: tier3, output: uniform(10, 30), latency: fast,
			mix: []variant{
				cachedCall(0, 0.125), cachedCall(1, 0.125), cachedCall(2, 0.125), cachedCall(3, 0.125),
				textCall("uncached", 0.5, 6000, 32),
			},
			warmup: true, window: steady,
		},
		{
			name:   "images-docs",
			about:  "half the calls carry a base64 PNG, half a base64 PDF document (about 1,500 tokens each): input tokens bind",
			limits: tier3, output: uniform(10, 30), latency: fast,
			mix:    []variant{imageCall(0.5, 3000), documentCall(0.5, 6000)},
			warmup: true, window: steady,
		},
		{
			name: "redis-restart",
			about: "steady-output traffic; Redis is killed at 24 s and restarted empty at 29 s, " +
				"the stand-in controller rewrites the pool at 30 s; shares over 15-75 s",
			limits: tier2, output: uniform(100, 200), latency: fast,
			mix:    outputMix,
			warmup: true, window: span{start: steady.start, length: time.Minute},
			outage: &span{start: 24 * time.Second, length: 5 * time.Second},
		},
	}
}

func uniform(lo, hi float64) mockapi.Distribution {
	return mockapi.Distribution{Kind: mockapi.DistUniform, Min: lo, Max: hi}
}

// filler returns n bytes of text starting with tag, so different tags make different prompts.
func filler(tag string, n int) string {
	const words = "the quick brown fox jumps over a lazy dog and keeps on running "
	var b strings.Builder
	b.Grow(n + len(words))
	b.WriteString(tag)
	b.WriteByte(' ')
	for b.Len() < n {
		b.WriteString(words)
	}
	return b.String()[:n]
}

// tokensOf is the mock's count of n bytes of text.
func tokensOf(n int) float64 { return math.Ceil(float64(n) / bytesPerToken) }

func newParams(maxTokens int64, blocks ...anthropic.ContentBlockParamUnion) anthropic.MessageNewParams {
	return anthropic.MessageNewParams{
		Model:     model,
		MaxTokens: maxTokens,
		Messages:  []anthropic.MessageParam{anthropic.NewUserMessage(blocks...)},
	}
}

// textCall is a one-message call with a prompt of promptBytes.
func textCall(name string, weight float64, promptBytes int, maxTokens int64) variant {
	return variant{
		name: name, weight: weight,
		params: newParams(maxTokens, anthropic.NewTextBlock(filler(name, promptBytes))),
		input:  messageOverhead + tokensOf(promptBytes),
	}
}

// cachedSystemBytes is the cached system prompt: 4,000 tokens, above the mock's 1,024-token
// minimum.
const cachedSystemBytes = 16_000

// cachedCall reads system prompt i from the cache (after the first call writes it); only the
// short question counts against ITPM.
func cachedCall(i int, weight float64) variant {
	const question = 200
	name := fmt.Sprintf("cached-system-%d", i)
	p := newParams(32, anthropic.NewTextBlock(filler(name+"-question", question)))
	p.System = []anthropic.TextBlockParam{{
		Text:         filler(fmt.Sprintf("system prompt %d", i), cachedSystemBytes),
		CacheControl: anthropic.NewCacheControlEphemeralParam(),
	}}
	return variant{name: name, weight: weight, params: p, input: messageOverhead + tokensOf(question)}
}

// captionBytes is the text sent next to an image or a document.
const captionBytes = 100

// imageCall carries one base64 PNG of about dataBytes; the mock charges 1,600 tokens for it
// whatever its size, as the proxy estimates.
func imageCall(weight float64, dataBytes int) variant {
	data := fakeFile("\x89PNG\r\n\x1a\n", dataBytes, 1)
	p := newParams(32, anthropic.NewImageBlockBase64("image/png", data), anthropic.NewTextBlock(filler("describe", captionBytes)))
	return variant{name: "image", weight: weight, params: p, input: messageOverhead + imageTokens + tokensOf(captionBytes)}
}

// documentCall carries one base64 PDF of about dataBytes; the mock charges its source object
// by the text rule.
func documentCall(weight float64, dataBytes int) variant {
	src := anthropic.Base64PDFSourceParam{Data: fakeFile("%PDF-1.7\n", dataBytes, 2)}
	raw, err := json.Marshal(src)
	if err != nil {
		panic(fmt.Sprintf("encoding a PDF source: %v", err)) // a constant struct always encodes
	}
	p := newParams(32, anthropic.NewDocumentBlock(src), anthropic.NewTextBlock(filler("summarize", captionBytes)))
	return variant{name: "pdf", weight: weight, params: p, input: messageOverhead + tokensOf(len(raw)) + tokensOf(captionBytes)}
}

// fakeFile is base64 of about n bytes of encoded data: header then seeded random bytes.
func fakeFile(header string, n int, seed uint64) string {
	raw := make([]byte, n*3/4)
	copy(raw, header)
	r := rand.New(rand.NewPCG(seed, seed))
	for i := len(header); i < len(raw); i++ {
		raw[i] = byte(r.UintN(256))
	}
	return base64.StdEncoding.EncodeToString(raw)
}
