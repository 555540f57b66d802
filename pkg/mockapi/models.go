package mockapi

import (
	"fmt"
	"slices"
	"strings"
	"time"
	"unicode"

	"github.com/claudecap/claudecap/pkg/capacity"
)

// modelInfo is what the mock knows about one model: its rate-limit class
// from the catalog and the API metadata GET /v1/models reports.
type modelInfo struct {
	id            string
	class         capacity.ModelClass
	readsCount    bool // cache reads count toward ITPM
	maxOutput     int64
	contextWindow int64
	displayName   string
	createdAt     time.Time
}

// contextWindowTokens is the input context every catalog model accepts.
const contextWindowTokens = 200_000

// maxOutputTokens is the largest max_tokens each model accepts, by id
// fragment; the catalog has no such column because planning never needs it.
func maxOutputTokens(id string) int64 {
	switch {
	case strings.Contains(id, "opus-4-6"):
		return 128_000
	case strings.Contains(id, "opus-4-1"), strings.Contains(id, "opus-4-2025"):
		return 32_000
	case strings.Contains(id, "3-5-haiku"):
		return 8_192
	default:
		return 64_000
	}
}

// modelIndex resolves the model names of requests. Exact ids and aliases are
// found in one map lookup; other spellings (case, spaces) go through the
// catalog's own resolution.
type modelIndex struct {
	byName  map[string]*modelInfo
	list    []*modelInfo // newest first, as the API lists them
	catalog *capacity.Catalog
}

func newModelIndex(cat *capacity.Catalog) *modelIndex {
	x := &modelIndex{byName: map[string]*modelInfo{}, catalog: cat}
	for _, m := range cat.Models() {
		info := &modelInfo{
			id:            m.ID,
			class:         m.Class,
			readsCount:    m.CacheReadsCountTowardITPM,
			maxOutput:     maxOutputTokens(m.ID),
			contextWindow: contextWindowTokens,
			displayName:   displayName(m.ID),
			createdAt:     releaseDate(m.ID),
		}
		x.list = append(x.list, info)
		x.byName[m.ID] = info
		for _, a := range m.Aliases {
			x.byName[a] = info
		}
	}
	slices.SortStableFunc(x.list, func(a, b *modelInfo) int { return b.createdAt.Compare(a.createdAt) })
	return x
}

// lookup resolves a requested model name.
func (x *modelIndex) lookup(name string) (*modelInfo, bool) {
	if info, ok := x.byName[name]; ok {
		return info, true
	}
	m, err := x.catalog.Model(name)
	if err != nil {
		return nil, false
	}
	info, ok := x.byName[m.ID]
	return info, ok
}

// displayName turns "claude-sonnet-4-5-20250929" into "Claude Sonnet 4.5"
// and "claude-3-5-haiku-20241022" into "Claude 3.5 Haiku".
func displayName(id string) string {
	parts := strings.Split(id, "-")
	if n := len(parts); n > 1 && len(parts[n-1]) == 8 && isDigits(parts[n-1]) {
		parts = parts[:n-1]
	}
	var words []string
	for i, p := range parts {
		switch {
		case isDigits(p) && i > 0 && isDigits(parts[i-1]):
			words[len(words)-1] += "." + p
		case p == "":
		default:
			r := []rune(p)
			r[0] = unicode.ToUpper(r[0])
			words = append(words, string(r))
		}
	}
	return strings.Join(words, " ")
}

// releaseDate reads the YYYYMMDD suffix of a dated id; undated ids get the
// epoch, which the API documents for unknown release dates.
func releaseDate(id string) time.Time {
	i := strings.LastIndexByte(id, '-')
	if i >= 0 {
		if t, err := time.Parse("20060102", id[i+1:]); err == nil {
			return t
		}
	}
	return time.Unix(0, 0).UTC()
}

func isDigits(s string) bool {
	if s == "" {
		return false
	}
	for _, r := range s {
		if r < '0' || r > '9' {
			return false
		}
	}
	return true
}

// modelJSON is one entry of GET /v1/models.
type modelJSON struct {
	Type           string    `json:"type"`
	ID             string    `json:"id"`
	DisplayName    string    `json:"display_name"`
	CreatedAt      time.Time `json:"created_at"`
	MaxInputTokens int64     `json:"max_input_tokens"`
	MaxTokens      int64     `json:"max_tokens"`
	Lifecycle      string    `json:"lifecycle"`
}

func (m *modelInfo) json() modelJSON {
	return modelJSON{
		Type: "model", ID: m.id, DisplayName: m.displayName, CreatedAt: m.createdAt,
		MaxInputTokens: m.contextWindow, MaxTokens: m.maxOutput, Lifecycle: "active",
	}
}

// modelPage is the paginated list body.
type modelPage struct {
	Data    []modelJSON `json:"data"`
	HasMore bool        `json:"has_more"`
	FirstID *string     `json:"first_id"`
	LastID  *string     `json:"last_id"`
}

// page applies the list endpoint's cursor parameters: limit (1..1000,
// default 20), after_id (entries after that id) or before_id (entries just
// before it).
func (x *modelIndex) page(limit int, afterID, beforeID string) (modelPage, *apiError) {
	var start, end int
	find := func(param, id string) (int, *apiError) {
		for i, m := range x.list {
			if m.id == id {
				return i, nil
			}
		}
		return 0, invalidRequest("%s: no model with id %q", param, id)
	}
	switch {
	case afterID != "" && beforeID != "":
		return modelPage{}, invalidRequest("after_id and before_id cannot both be set")
	case afterID != "":
		i, err := find("after_id", afterID)
		if err != nil {
			return modelPage{}, err
		}
		start = i + 1
		end = min(len(x.list), start+limit)
	case beforeID != "":
		i, err := find("before_id", beforeID)
		if err != nil {
			return modelPage{}, err
		}
		end = i
		start = max(0, end-limit)
	default:
		end = min(len(x.list), limit)
	}
	p := modelPage{Data: make([]modelJSON, 0, end-start)}
	for _, m := range x.list[start:end] {
		p.Data = append(p.Data, m.json())
	}
	if beforeID != "" {
		p.HasMore = start > 0
	} else {
		p.HasMore = end < len(x.list)
	}
	if len(p.Data) > 0 {
		first, last := p.Data[0].ID, p.Data[len(p.Data)-1].ID
		p.FirstID, p.LastID = &first, &last
	}
	return p, nil
}

// notFoundModel is the API's answer for an unknown model.
func notFoundModel(name string) *apiError {
	return &apiError{typ: ErrNotFound, message: fmt.Sprintf("model: %s", name)}
}
