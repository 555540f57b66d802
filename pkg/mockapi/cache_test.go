package mockapi_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/anthropics/anthropic-sdk-go/v2"
	"github.com/anthropics/anthropic-sdk-go/v2/option"

	"github.com/claudecap/claudecap/pkg/mockapi"
)

// cachedParams has a 2,000-token system prompt marked for caching and a
// short question after it.
func cachedParams(question, ttl string) anthropic.MessageNewParams {
	cc := anthropic.NewCacheControlEphemeralParam()
	if ttl == "1h" {
		cc.TTL = anthropic.CacheControlEphemeralTTLTTL1h
	}
	p := userParams(question, 10)
	p.System = []anthropic.TextBlockParam{{Text: strings.Repeat("rule", 2000), CacheControl: cc}}
	return p
}

func TestPromptCaching(t *testing.T) {
	clock := mockapi.NewFakeClock(t0)
	_, hs := startMock(t, mockapi.Config{Tier: "tier-1", Clock: clock, OutputTokens: mockapi.Fixed(1)})
	ctx := context.Background()
	client := newClient(hs)
	other := newClient(hs, option.WithAPIKey("another-key"))
	q := "What is rule 7?" // 3 + 4 tokens after the cached prefix
	call := func(c anthropic.Client, ttl string) anthropic.Usage {
		t.Helper()
		msg, err := c.Messages.New(ctx, cachedParams(q, ttl))
		if err != nil {
			t.Fatal(err)
		}
		return msg.Usage
	}
	check := func(step string, u anthropic.Usage, in, write, read int64) {
		t.Helper()
		if u.InputTokens != in || u.CacheCreationInputTokens != write || u.CacheReadInputTokens != read {
			t.Errorf("%s: usage in %d write %d read %d, want %d %d %d", step, u.InputTokens, u.CacheCreationInputTokens, u.CacheReadInputTokens, in, write, read)
		}
	}
	check("first", call(client, "5m"), 7, 2000, 0)
	check("second", call(client, "5m"), 7, 0, 2000)
	check("other key", call(other, "5m"), 7, 2000, 0)
	clock.Advance(4 * time.Minute)
	check("read refreshes", call(client, "5m"), 7, 0, 2000)
	clock.Advance(4 * time.Minute) // 8 min after the write, 4 after the read
	check("still fresh", call(client, "5m"), 7, 0, 2000)
	clock.Advance(5*time.Minute + time.Second)
	u := call(client, "5m")
	check("expired", u, 7, 2000, 0)
	if u.CacheCreation.Ephemeral5mInputTokens != 2000 || u.CacheCreation.Ephemeral1hInputTokens != 0 {
		t.Errorf("5m write split = %+v", u.CacheCreation)
	}

	u = call(client, "1h") // same prefix, but the 5m entry is a hit
	check("ttl does not change identity", u, 7, 0, 2000)
	clock.Advance(6 * time.Minute)
	u = call(other, "1h") // expired for the other key: a fresh 1h write
	check("1h write", u, 7, 2000, 0)
	if u.CacheCreation.Ephemeral1hInputTokens != 2000 {
		t.Errorf("1h write split = %+v", u.CacheCreation)
	}
	clock.Advance(50 * time.Minute)
	check("1h survives 50 minutes", call(other, "1h"), 7, 0, 2000)

	// Cache reads do not count toward ITPM for current models: only
	// uncached input and cache writes were charged.
	st := getStats(t, hs)
	cs := st.Classes[testClass]
	if cs.Tokens.CacheReadInput != 5*2000 || cs.Tokens.CacheCreationInput != 4*2000 || cs.Tokens.Input != 9*7 {
		t.Errorf("token stats = %+v", cs.Tokens)
	}
}

func TestCacheBelowMinimumIsNotCached(t *testing.T) {
	_, hs := startMock(t, mockapi.Config{OutputTokens: mockapi.Fixed(1)})
	client := newClient(hs)
	p := userParams("q", 10)
	p.System = []anthropic.TextBlockParam{{Text: strings.Repeat("tiny", 100), CacheControl: anthropic.NewCacheControlEphemeralParam()}}
	for range 2 {
		msg, err := client.Messages.New(context.Background(), p)
		if err != nil {
			t.Fatal(err)
		}
		if msg.Usage.CacheCreationInputTokens != 0 || msg.Usage.CacheReadInputTokens != 0 || msg.Usage.InputTokens != 104 {
			t.Errorf("usage = %+v, want 104 uncached tokens", msg.Usage)
		}
	}
}

// TestCacheLookback: a conversation that moves its breakpoint to the newest
// turn still reads the prefix written at the previous breakpoint.
func TestCacheLookback(t *testing.T) {
	_, hs := startMock(t, mockapi.Config{OutputTokens: mockapi.Fixed(1)})
	client := newClient(hs)
	long := strings.Repeat("turn", 1500) // 1,500 tokens
	cc := anthropic.NewCacheControlEphemeralParam()
	turn1 := anthropic.NewUserMessage(anthropic.ContentBlockParamUnion{OfText: &anthropic.TextBlockParam{Text: long, CacheControl: cc}})
	p := anthropic.MessageNewParams{Model: testModel, MaxTokens: 10, Messages: []anthropic.MessageParam{turn1}}
	msg, err := client.Messages.New(context.Background(), p)
	if err != nil {
		t.Fatal(err)
	}
	if msg.Usage.CacheCreationInputTokens != 1503 {
		t.Fatalf("first turn wrote %d, want 1503", msg.Usage.CacheCreationInputTokens)
	}
	plain := anthropic.NewUserMessage(anthropic.NewTextBlock(long))
	p.Messages = []anthropic.MessageParam{
		plain, // same content, breakpoint moved away
		anthropic.NewAssistantMessage(anthropic.NewTextBlock("ok")),
		anthropic.NewUserMessage(anthropic.ContentBlockParamUnion{OfText: &anthropic.TextBlockParam{Text: "and then?", CacheControl: cc}}),
	}
	msg, err = client.Messages.New(context.Background(), p)
	if err != nil {
		t.Fatal(err)
	}
	// Read 1,503; write the rest up to the new breakpoint: 3+1 + 3+3 = 10.
	if msg.Usage.CacheReadInputTokens != 1503 || msg.Usage.CacheCreationInputTokens != 10 || msg.Usage.InputTokens != 0 {
		t.Errorf("second turn usage = read %d write %d in %d", msg.Usage.CacheReadInputTokens, msg.Usage.CacheCreationInputTokens, msg.Usage.InputTokens)
	}
}
