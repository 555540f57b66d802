package mockapi

import (
	"hash/maphash"
	"sync"
)

// Prompt caching follows Anthropic's model: the prompt is read in the order
// tools, system, messages; a block with cache_control ends a cacheable prefix
// (a breakpoint). A request reads the longest prefix already cached (looking
// back up to cacheLookbackBlocks block boundaries from each breakpoint, as the
// API does), and writes every breakpoint beyond that. Cached entries are keyed
// by API key, model and a hash of the prefix's content (cache_control itself
// excluded), expire after their TTL (5 minutes or 1 hour) and are refreshed by
// every read. Prefixes shorter than the configured minimum are not cached.

const (
	cacheLookbackBlocks = 20
	ttl5mMicros         = 5 * 60 * 1_000_000
	ttl1hMicros         = 60 * 60 * 1_000_000
	// cacheSweepEvery is how many writes pass between sweeps of expired
	// entries, which bounds the memory of a long-running mock.
	cacheSweepEvery = 4096
)

// boundary is the end of one block in cache order.
type boundary struct {
	tokens     int64  // prompt tokens up to and including this block
	hash       uint64 // identity of the prefix ending here
	ttlMicros  int64  // > 0 when a breakpoint ends here
	breakpoint bool
}

// promptProfile is what caching needs to know about a prompt.
type promptProfile struct {
	total  int64
	bounds []boundary // nil when the request has no breakpoint
}

// cacheUsage splits a prompt's tokens the way usage reports them.
type cacheUsage struct {
	read       int64
	creation5m int64
	creation1h int64
	readIndex  int // boundary that was read, -1 for none
}

func (u cacheUsage) creation() int64 { return u.creation5m + u.creation1h }

// hasBreakpoint reports whether any block, tool or the request itself carries
// cache_control.
func hasBreakpoint(req *messagesRequest) bool {
	if req.CacheControl != nil {
		return true
	}
	for i := range req.Tools {
		if req.Tools[i].CacheControl != nil {
			return true
		}
	}
	for i := range req.System.Blocks {
		if req.System.Blocks[i].CacheControl != nil {
			return true
		}
	}
	for i := range req.Messages {
		for j := range req.Messages[i].Content.Blocks {
			if req.Messages[i].Content.Blocks[j].CacheControl != nil {
				return true
			}
		}
	}
	return false
}

// prefixHash hashes a prompt prefix field by field; each field is followed
// by a separator so that adjacent fields cannot run together.
// maphash.Hash never fails to write, hence the dropped errors.
type prefixHash struct{ h maphash.Hash }

func (p *prefixHash) str(s string) {
	_, _ = p.h.WriteString(s)
	_ = p.h.WriteByte(0)
}

func (p *prefixHash) raw(b []byte) {
	_, _ = p.h.Write(b)
	_ = p.h.WriteByte(0)
}

func (p *prefixHash) tag(t byte) { _ = p.h.WriteByte(t) }

// Tags that mark what kind of element follows in a prefix.
const (
	tagTool byte = iota + 1
	tagSystem
	tagMessage
	tagText
	tagBlock
	tagBlockEnd
	tagIsError
)

// profilePrompt counts the prompt and, when it has breakpoints, hashes every
// prefix. apiKey and model scope the hashes so caches are never shared across
// keys or models.
func profilePrompt(seed maphash.Seed, apiKey string, req *messagesRequest) promptProfile {
	if !hasBreakpoint(req) {
		return promptProfile{total: countInputTokens(req)}
	}
	var h prefixHash
	h.h.SetSeed(seed)
	h.str(apiKey)
	h.str(req.Model)

	p := promptProfile{bounds: make([]boundary, 0, len(req.Tools)+len(req.System.Blocks)+2*len(req.Messages)+1)}
	mark := func(cc *cacheControl) {
		b := boundary{tokens: p.total, hash: h.h.Sum64()}
		if cc != nil {
			b.breakpoint, b.ttlMicros = true, ttlMicros(cc.TTL)
		}
		p.bounds = append(p.bounds, b)
	}
	for i := range req.Tools {
		t := &req.Tools[i]
		h.tag(tagTool)
		h.str(t.Type)
		h.str(t.Name)
		h.str(t.Description)
		h.raw(t.InputSchema)
		p.total += toolTokens(t)
		mark(t.CacheControl)
	}
	h.tag(tagSystem)
	profileContent(&h, &req.System, &p, mark)
	for i := range req.Messages {
		m := &req.Messages[i]
		h.tag(tagMessage)
		h.str(m.Role)
		p.total += messageOverheadTokens
		profileContent(&h, &m.Content, &p, mark)
	}
	if req.CacheControl != nil && len(p.bounds) > 0 {
		last := &p.bounds[len(p.bounds)-1]
		if !last.breakpoint {
			last.breakpoint, last.ttlMicros = true, ttlMicros(req.CacheControl.TTL)
		}
	}
	return p
}

// profileContent hashes and counts one string-or-blocks field, marking a
// boundary after each block.
func profileContent(h *prefixHash, c *content, p *promptProfile, mark func(*cacheControl)) {
	if !c.Present {
		return
	}
	if c.IsText {
		h.tag(tagText)
		h.str(c.Text)
		p.total += textTokens(len(c.Text))
		mark(nil)
		return
	}
	for i := range c.Blocks {
		b := &c.Blocks[i]
		hashBlock(h, b)
		p.total += blockTokens(b)
		mark(b.CacheControl)
	}
}

// hashBlock writes every field of b that makes up its content (everything
// but cache_control, so moving a breakpoint does not change a prefix).
func hashBlock(h *prefixHash, b *block) {
	h.tag(tagBlock)
	for _, s := range [...]string{b.Type, b.Text, b.ID, b.Name, b.ToolUseID, b.Thinking, b.Signature, b.Data} {
		h.str(s)
	}
	h.raw(b.Input)
	h.raw(b.Source)
	if b.IsError {
		h.tag(tagIsError)
	}
	if b.Content.IsText {
		h.str(b.Content.Text)
	}
	for i := range b.Content.Blocks {
		hashBlock(h, &b.Content.Blocks[i])
	}
	h.tag(tagBlockEnd)
}

// ttlMicros maps a cache_control ttl to its duration; validation has already
// refused anything but "", "5m" and "1h".
func ttlMicros(ttl string) int64 {
	if ttl == "1h" {
		return ttl1hMicros
	}
	return ttl5mMicros
}

// cacheEntry is one cached prefix.
type cacheEntry struct {
	expires   int64
	ttlMicros int64
}

// promptCache is the server's prompt cache.
type promptCache struct {
	mu      sync.Mutex
	entries map[uint64]cacheEntry
	writes  int
}

func newPromptCache() *promptCache { return &promptCache{entries: make(map[uint64]cacheEntry)} }

// plan works out how a prompt's tokens split into cache reads, cache writes
// and uncached input as of now, without changing the cache.
func (c *promptCache) plan(now int64, p *promptProfile, minTokens int64) cacheUsage {
	u := cacheUsage{readIndex: -1}
	if len(p.bounds) == 0 {
		return u
	}
	c.mu.Lock()
	for k := len(p.bounds) - 1; k >= 0; k-- {
		if !p.bounds[k].breakpoint {
			continue
		}
		for j := k; j >= 0 && j > k-cacheLookbackBlocks; j-- {
			b := &p.bounds[j]
			if b.tokens <= u.read || b.tokens < minTokens {
				break
			}
			if e, ok := c.entries[b.hash]; ok && e.expires > now {
				u.read, u.readIndex = b.tokens, j
				break
			}
		}
	}
	c.mu.Unlock()

	written := u.read
	for k := range p.bounds {
		b := &p.bounds[k]
		if !b.breakpoint || b.tokens <= written || b.tokens < minTokens {
			continue
		}
		if b.ttlMicros == ttl1hMicros {
			u.creation1h += b.tokens - written
		} else {
			u.creation5m += b.tokens - written
		}
		written = b.tokens
	}
	return u
}

// commit records an admitted request: the prefix it read is refreshed and
// every breakpoint it wrote becomes an entry.
func (c *promptCache) commit(now int64, p *promptProfile, u cacheUsage, minTokens int64) {
	if len(p.bounds) == 0 {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if u.readIndex >= 0 {
		h := p.bounds[u.readIndex].hash
		if e, ok := c.entries[h]; ok {
			e.expires = max(e.expires, now+e.ttlMicros)
			c.entries[h] = e
		}
	}
	for k := range p.bounds {
		b := &p.bounds[k]
		if !b.breakpoint || b.tokens <= u.read || b.tokens < minTokens {
			continue
		}
		c.entries[b.hash] = cacheEntry{expires: now + b.ttlMicros, ttlMicros: b.ttlMicros}
		c.writes++
	}
	if c.writes >= cacheSweepEvery {
		c.writes = 0
		for h, e := range c.entries {
			if e.expires <= now {
				delete(c.entries, h)
			}
		}
	}
}

// reset forgets every entry.
func (c *promptCache) reset() {
	c.mu.Lock()
	clear(c.entries)
	c.writes = 0
	c.mu.Unlock()
}
