package mockapi

import (
	"math"
	"strings"
)

// The mock's output is filler text made of 4-byte words ("the ", "and ",
// ...), so the token rule (ceil(bytes/4)) gives back exactly the number of
// output tokens reported. One long text is generated per server from the seed
// and every response is a slice of it: producing output allocates nothing.
const (
	// outputOffsets is how many different starting words a response may
	// begin at.
	outputOffsets = 32_768
	// maxOutputTextTokens covers the largest max_tokens of any model.
	maxOutputTextTokens = 128_000
)

var fillerWords = [...]string{
	"the ", "and ", "for ", "you ", "are ", "can ", "was ", "not ", "all ", "but ",
	"how ", "new ", "one ", "use ", "way ", "may ", "our ", "out ", "see ", "two ",
	"get ", "has ", "its ", "now ", "who ", "did ", "any ", "day ", "set ", "run ",
	"so, ", "ok. ", "yes ", "let ", "put ", "own ", "few ", "low ", "top ", "end ",
}

// generateText builds the server's filler text.
func generateText(seed uint64) string {
	r := newRNG(seed, math.MaxUint64)
	var b strings.Builder
	n := outputOffsets + maxOutputTextTokens
	b.Grow(n * bytesPerToken)
	for range n {
		b.WriteString(fillerWords[r.intn(len(fillerWords))])
	}
	return b.String()
}

// outputPlan is what a message will say.
type outputPlan struct {
	tokens       int64
	text         string
	stopReason   string
	stopSequence string // "" renders as null
}

// planOutput draws the output length from the configured distribution,
// caps it at max_tokens (stop_reason "max_tokens"), picks the text, and cuts
// it at the earliest stop sequence found (stop_reason "stop_sequence").
func (s *Server) planOutput(r *rng, req *messagesRequest, maxTokens int64) outputPlan {
	n := max(int64(math.Round(s.cfg.OutputTokens.sample(r))), 1)
	p := outputPlan{stopReason: "end_turn"}
	if n >= maxTokens {
		n, p.stopReason = maxTokens, "max_tokens"
	}
	n = min(n, maxOutputTextTokens)
	off := int64(r.intn(outputOffsets))
	p.text = s.text[off*bytesPerToken : (off+n)*bytesPerToken]
	cut := -1
	for _, seq := range req.StopSequences {
		if i := strings.Index(p.text, seq); i >= 0 && (cut < 0 || i < cut) {
			cut, p.stopSequence = i, seq
		}
	}
	if cut >= 0 {
		p.text = p.text[:cut]
		p.stopReason = "stop_sequence"
	}
	p.tokens = textTokens(len(p.text))
	return p
}
