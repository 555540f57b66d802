package capacity

import (
	_ "embed"
	"errors"
	"fmt"
	"maps"
	"math"
	"os"
	"slices"
	"strings"

	"sigs.k8s.io/yaml"

	"github.com/claudecap/claudecap/pkg/dimension"
)

// builtinCatalogYAML is the dated data the planner and the controller use when the user gives
// no catalog of their own. Keeping it as data, not code, lets users override it without a build.
//
//go:embed catalog.yaml
var builtinCatalogYAML []byte

// builtinCatalog is parsed once at start-up. A parse failure is kept inside the catalog, not
// panicked on, so that every lookup explains it; a test makes sure it never happens.
var builtinCatalog = parseBuiltinCatalog(builtinCatalogYAML)

// ErrUnknownModel is wrapped by Catalog.Model when a name is neither a model id nor an alias.
var ErrUnknownModel = errors.New("unknown model")

// ErrUnknownTier is wrapped by Catalog.Limits when a tier name is not in the catalog.
var ErrUnknownTier = errors.New("unknown tier")

// ErrNoTierLimits is wrapped by Catalog.Limits when the catalog knows the tier but not that
// tier's limits for the model class (an older model, or a class a user file added).
var ErrNoTierLimits = errors.New("no tier limits")

// ModelClass names a group of models that share one rate-limit pool, for example "sonnet-4":
// Anthropic pools limits per class, so every model of a class draws from the same budget.
type ModelClass string

// TierLimits are per-minute limits in the dimensions Anthropic enforces, indexed by
// dimension. Input tokens are counted the way Anthropic counts them (cache reads excluded for
// current models). In JSON and YAML (catalog.yaml) they are an object with a member per
// dimension named by its LimitField: {requestsPerMinute: 50, inputTokensPerMinute: 30000, ...}.
type TierLimits dimension.Amounts

// Amounts returns the limits per dimension.
func (l TierLimits) Amounts() PerDimension { return PerDimension(l) }

// TierLimitsOf returns the limits whose Amounts are a.
func TierLimitsOf(a PerDimension) TierLimits { return TierLimits(a) }

// MarshalJSON writes the limits as an object keyed by the dimensions' LimitField.
func (l TierLimits) MarshalJSON() ([]byte, error) {
	return dimension.MarshalObject(l, dimension.LimitFieldOf, false)
}

// UnmarshalJSON reads what MarshalJSON writes, rejecting a member that names no dimension.
func (l *TierLimits) UnmarshalJSON(data []byte) error {
	return dimension.UnmarshalObject(data, l, dimension.LimitFieldOf, nil)
}

// limitFieldList names every dimension's LimitField for messages: "a, b and c".
func limitFieldList() string {
	fields := make([]string, 0, dimension.Count)
	for _, d := range dimension.All() {
		fields = append(fields, d.Info().LimitField)
	}
	if len(fields) < 2 {
		return strings.Join(fields, "")
	}
	return strings.Join(fields[:len(fields)-1], ", ") + " and " + fields[len(fields)-1]
}

// Prices are a model's list prices in US dollars per million tokens.
type Prices struct {
	// InputPerMTok is the price of input tokens that neither read nor write the prompt cache.
	InputPerMTok float64 `json:"inputPerMTok"`
	// OutputPerMTok is the price of output tokens.
	OutputPerMTok float64 `json:"outputPerMTok"`
	// CacheWrite5mPerMTok is the price of input tokens written to the cache with a 5-minute TTL.
	CacheWrite5mPerMTok float64 `json:"cacheWrite5mPerMTok"`
	// CacheWrite1hPerMTok is the price of input tokens written to the cache with a 1-hour TTL.
	CacheWrite1hPerMTok float64 `json:"cacheWrite1hPerMTok"`
	// CacheReadPerMTok is the price of input tokens read from the cache.
	CacheReadPerMTok float64 `json:"cacheReadPerMTok"`
	// BatchDiscount is the share taken off every price above for requests sent through
	// Message Batches, 0 to 1 (0.5 is half price).
	BatchDiscount float64 `json:"batchDiscount"`
}

// LongContextPrices replace a model's input and output prices for a whole request whose input
// exceeds AboveInputTokens (Sonnet 4 and 4.5 with the 1M-context beta). Cache prices keep
// their ratio to the input price.
type LongContextPrices struct {
	// AboveInputTokens is the input size, cached tokens included, past which these prices apply.
	AboveInputTokens int64 `json:"aboveInputTokens"`
	// InputPerMTok replaces Prices.InputPerMTok.
	InputPerMTok float64 `json:"inputPerMTok"`
	// OutputPerMTok replaces Prices.OutputPerMTok.
	OutputPerMTok float64 `json:"outputPerMTok"`
}

// Model is one Claude model as the planner sees it.
type Model struct {
	// ID is the dated model id, for example claude-sonnet-4-5-20250929.
	ID string `json:"id"`
	// Aliases are other names that resolve to this model, for example claude-sonnet-4-5.
	Aliases []string `json:"aliases,omitempty"`
	// Class is the rate-limit pool the model draws from.
	Class ModelClass `json:"class"`
	// Prices are the model's list prices.
	Prices Prices `json:"prices"`
	// LongContext, when set, reprices requests with very large inputs.
	LongContext *LongContextPrices `json:"longContext,omitempty"`
	// CacheReadsCountTowardITPM is true for older models, whose cache reads still use up the
	// input-tokens-per-minute limit.
	CacheReadsCountTowardITPM bool `json:"cacheReadsCountTowardITPM,omitempty"`
}

// Catalog maps model names to models, and model classes and tiers to limits. It is immutable
// once built: DefaultCatalog and LoadCatalog hand out catalogs that are safe to share.
type Catalog struct {
	// AsOf is the date the data describes, for example "2026-04".
	AsOf string

	source catalogFile // merged file form, kept so a user file can be layered on top
	tiers  []string
	models []Model
	byName map[string]int // lower-cased id or alias -> index into models
	limits map[ModelClass]map[string]TierLimits
	broken error // set only when the built-in data failed to parse
}

// DefaultCatalog returns the built-in catalog. It never panics: were the embedded data
// broken, every lookup on the returned catalog would return that error.
func DefaultCatalog() *Catalog {
	c := *builtinCatalog
	return &c
}

// LoadCatalog reads a user catalog file and layers it on the built-in one: a model with an
// existing id replaces that model, class limits replace the same tier's limits, and anything
// new is added. The file has the format of the built-in catalog.yaml.
func LoadCatalog(path string) (*Catalog, error) {
	data, err := os.ReadFile(path) //nolint:gosec // the path is the user's own --catalog argument.
	if err != nil {
		return nil, fmt.Errorf("reading model catalog: %w", err)
	}
	c, err := DefaultCatalog().Overlay(data)
	if err != nil {
		return nil, fmt.Errorf("model catalog %s: %w", path, err)
	}
	return c, nil
}

// Overlay returns a new catalog made of c with the YAML catalog data layered on top, with the
// semantics of LoadCatalog. c itself is not changed.
func (c *Catalog) Overlay(data []byte) (*Catalog, error) {
	if c.broken != nil {
		return nil, c.broken
	}
	var overlay catalogFile
	if err := yaml.UnmarshalStrict(data, &overlay); err != nil {
		return nil, fmt.Errorf("parsing catalog YAML: %w", err)
	}
	merged, err := mergeCatalogFiles(c.source, overlay)
	if err != nil {
		return nil, err
	}
	return buildCatalog(merged)
}

// Model resolves a model id or alias, ignoring case and surrounding spaces.
func (c *Catalog) Model(idOrAlias string) (Model, error) {
	if c.broken != nil {
		return Model{}, c.broken
	}
	if i, ok := c.byName[catalogKey(idOrAlias)]; ok {
		return c.models[i], nil
	}
	known := make([]string, 0, len(c.models))
	for _, m := range c.models {
		name := m.ID
		if len(m.Aliases) > 0 {
			name += " (" + strings.Join(m.Aliases, ", ") + ")"
		}
		known = append(known, name)
	}
	return Model{}, fmt.Errorf("%w %q (catalog as of %s); known models: %s",
		ErrUnknownModel, idOrAlias, c.AsOf, strings.Join(known, "; "))
}

// Models returns every model of the catalog in catalog order.
func (c *Catalog) Models() []Model {
	return slices.Clone(c.models)
}

// ModelNames returns every id and alias the catalog resolves, sorted, for shell completion.
func (c *Catalog) ModelNames() []string {
	names := make([]string, 0, len(c.byName))
	for _, m := range c.models {
		names = append(names, m.ID)
		names = append(names, m.Aliases...)
	}
	slices.Sort(names)
	return names
}

// Limits returns the published limits of a tier for a model class.
func (c *Catalog) Limits(class ModelClass, tier string) (TierLimits, error) {
	if c.broken != nil {
		return TierLimits{}, c.broken
	}
	key := catalogKey(tier)
	if !slices.Contains(c.tiers, key) {
		return TierLimits{}, fmt.Errorf("%w %q: known tiers are %s", ErrUnknownTier, tier, strings.Join(c.tiers, ", "))
	}
	l, ok := c.limits[class][key]
	if !ok {
		return TierLimits{}, fmt.Errorf("%w: the catalog (as of %s) has no %s limits for model class %s; declare explicit limits",
			ErrNoTierLimits, c.AsOf, key, class)
	}
	return l, nil
}

// Tiers returns the tier names, smallest first.
func (c *Catalog) Tiers() []string {
	return slices.Clone(c.tiers)
}

// catalogKey is how names are compared: model ids and tiers are lower case by convention,
// and a stray space or capital letter in a manifest should not make a model unknown.
func catalogKey(name string) string {
	return strings.ToLower(strings.TrimSpace(name))
}

// catalogFile is the YAML form of a catalog. Optional numbers are pointers so that a user
// file can leave them out without zeroing the built-in value.
type catalogFile struct {
	AsOf    string                    `json:"asOf,omitempty"`
	Tiers   []string                  `json:"tiers,omitempty"`
	Pricing catalogPricingRules       `json:"pricing"`
	Classes map[ModelClass]classLimit `json:"classes,omitempty"`
	Models  []modelEntry              `json:"models,omitempty"`
}

// catalogPricingRules derive cache and batch prices from a model's input price.
type catalogPricingRules struct {
	CacheWrite5mMultiplier *float64 `json:"cacheWrite5mMultiplier,omitempty"`
	CacheWrite1hMultiplier *float64 `json:"cacheWrite1hMultiplier,omitempty"`
	CacheReadMultiplier    *float64 `json:"cacheReadMultiplier,omitempty"`
	BatchDiscount          *float64 `json:"batchDiscount,omitempty"`
}

// classLimit holds one model class's limits per tier name.
type classLimit struct {
	Limits map[string]TierLimits `json:"limits,omitempty"`
}

// modelEntry is one model in the YAML form.
type modelEntry struct {
	ID                        string             `json:"id"`
	Aliases                   []string           `json:"aliases,omitempty"`
	Class                     ModelClass         `json:"class"`
	Prices                    modelEntryPrices   `json:"prices"`
	LongContext               *LongContextPrices `json:"longContext,omitempty"`
	CacheReadsCountTowardITPM bool               `json:"cacheReadsCountTowardITPM,omitempty"`
}

// modelEntryPrices are a model's prices; those left out follow the catalog's pricing rules.
type modelEntryPrices struct {
	InputPerMTok        *float64 `json:"inputPerMTok,omitempty"`
	OutputPerMTok       *float64 `json:"outputPerMTok,omitempty"`
	CacheWrite5mPerMTok *float64 `json:"cacheWrite5mPerMTok,omitempty"`
	CacheWrite1hPerMTok *float64 `json:"cacheWrite1hPerMTok,omitempty"`
	CacheReadPerMTok    *float64 `json:"cacheReadPerMTok,omitempty"`
	BatchDiscount       *float64 `json:"batchDiscount,omitempty"`
}

// parseBuiltinCatalog builds the built-in catalog, turning a failure into a catalog whose
// lookups all report it.
func parseBuiltinCatalog(data []byte) *Catalog {
	var f catalogFile
	if err := yaml.UnmarshalStrict(data, &f); err != nil {
		return &Catalog{broken: fmt.Errorf("built-in model catalog: %w", err)}
	}
	c, err := buildCatalog(f)
	if err != nil {
		return &Catalog{broken: fmt.Errorf("built-in model catalog: %w", err)}
	}
	return c
}

// mergeCatalogFiles layers overlay on base without changing either.
func mergeCatalogFiles(base, overlay catalogFile) (catalogFile, error) {
	out := base
	if overlay.AsOf != "" {
		out.AsOf = overlay.AsOf
	}
	if len(overlay.Tiers) > 0 {
		out.Tiers = slices.Clone(overlay.Tiers)
	}
	out.Pricing = mergePricingRules(base.Pricing, overlay.Pricing)

	out.Classes = make(map[ModelClass]classLimit, len(base.Classes)+len(overlay.Classes))
	for class, cl := range base.Classes {
		out.Classes[class] = classLimit{Limits: maps.Clone(cl.Limits)}
	}
	for class, cl := range overlay.Classes {
		merged := out.Classes[class]
		if merged.Limits == nil {
			merged.Limits = map[string]TierLimits{}
		}
		for tier, l := range cl.Limits {
			merged.Limits[catalogKey(tier)] = l
		}
		out.Classes[class] = merged
	}

	out.Models = slices.Clone(base.Models)
	for _, m := range overlay.Models {
		if catalogKey(m.ID) == "" {
			return catalogFile{}, errors.New("a model in the catalog file has no id")
		}
		i := slices.IndexFunc(out.Models, func(b modelEntry) bool { return catalogKey(b.ID) == catalogKey(m.ID) })
		if i >= 0 {
			out.Models[i] = m
		} else {
			out.Models = append(out.Models, m)
		}
	}
	return out, nil
}

func mergePricingRules(base, overlay catalogPricingRules) catalogPricingRules {
	pick := func(b, o *float64) *float64 {
		if o != nil {
			return o
		}
		return b
	}
	return catalogPricingRules{
		CacheWrite5mMultiplier: pick(base.CacheWrite5mMultiplier, overlay.CacheWrite5mMultiplier),
		CacheWrite1hMultiplier: pick(base.CacheWrite1hMultiplier, overlay.CacheWrite1hMultiplier),
		CacheReadMultiplier:    pick(base.CacheReadMultiplier, overlay.CacheReadMultiplier),
		BatchDiscount:          pick(base.BatchDiscount, overlay.BatchDiscount),
	}
}

// buildCatalog validates the file form and resolves it into lookup tables.
func buildCatalog(f catalogFile) (*Catalog, error) {
	if strings.TrimSpace(f.AsOf) == "" {
		return nil, errors.New("asOf is required: say which date the prices and limits describe")
	}
	tiers, err := catalogTiers(f.Tiers)
	if err != nil {
		return nil, err
	}
	limits, err := catalogClassLimits(f.Classes, tiers)
	if err != nil {
		return nil, err
	}
	c := &Catalog{
		AsOf:   strings.TrimSpace(f.AsOf),
		source: f,
		tiers:  tiers,
		limits: limits,
		byName: make(map[string]int, 3*len(f.Models)),
	}
	for _, entry := range f.Models {
		m, err := resolveModelEntry(entry, f.Pricing)
		if err != nil {
			return nil, err
		}
		for _, name := range append([]string{m.ID}, m.Aliases...) {
			key := catalogKey(name)
			if key == "" {
				return nil, fmt.Errorf("model %s: aliases must not be empty", m.ID)
			}
			if prev, dup := c.byName[key]; dup {
				return nil, fmt.Errorf("model name %q is used twice: by %s and by %s", name, c.models[prev].ID, m.ID)
			}
			c.byName[key] = len(c.models)
		}
		c.models = append(c.models, m)
	}
	return c, nil
}

func catalogTiers(names []string) ([]string, error) {
	if len(names) == 0 {
		return nil, errors.New("tiers is required: list the usage tiers, smallest first")
	}
	tiers := make([]string, 0, len(names))
	for _, name := range names {
		key := catalogKey(name)
		if key == "" {
			return nil, errors.New("tiers: a tier name is empty")
		}
		if slices.Contains(tiers, key) {
			return nil, fmt.Errorf("tiers: %s is listed twice", key)
		}
		tiers = append(tiers, key)
	}
	return tiers, nil
}

// catalogClassLimits checks every class's limits: positive, for known tiers, and never
// smaller in a bigger tier, so that "the smallest tier that fits" is well defined.
func catalogClassLimits(classes map[ModelClass]classLimit, tiers []string) (map[ModelClass]map[string]TierLimits, error) {
	out := make(map[ModelClass]map[string]TierLimits, len(classes))
	for _, class := range slices.Sorted(maps.Keys(classes)) {
		if strings.TrimSpace(string(class)) == "" {
			return nil, errors.New("classes: a model class name is empty")
		}
		byTier := make(map[string]TierLimits, len(classes[class].Limits))
		for tier, l := range classes[class].Limits {
			key := catalogKey(tier)
			if !slices.Contains(tiers, key) {
				return nil, fmt.Errorf("classes.%s: %w %q (tiers are %s)", class, ErrUnknownTier, tier, strings.Join(tiers, ", "))
			}
			for _, v := range l {
				if v <= 0 {
					return nil, fmt.Errorf("classes.%s.limits.%s: %s must all be positive", class, key, limitFieldList())
				}
			}
			byTier[key] = l
		}
		var prevTier string
		for _, tier := range tiers {
			l, ok := byTier[tier]
			if !ok {
				continue
			}
			if prevTier != "" {
				p := byTier[prevTier]
				if l.Amounts().Sub(p.Amounts()).AnyNegative() {
					return nil, fmt.Errorf("classes.%s: %s limits are below %s limits in some dimension; list tiers smallest first", class, tier, prevTier)
				}
			}
			prevTier = tier
		}
		out[class] = byTier
	}
	return out, nil
}

// resolveModelEntry validates one model and fills the prices it leaves to the pricing rules.
func resolveModelEntry(e modelEntry, rules catalogPricingRules) (Model, error) {
	id := strings.TrimSpace(e.ID)
	if id == "" {
		return Model{}, errors.New("a model has no id")
	}
	if strings.TrimSpace(string(e.Class)) == "" {
		return Model{}, fmt.Errorf("model %s: class is required (the rate-limit pool it draws from)", id)
	}
	if e.Prices.InputPerMTok == nil || e.Prices.OutputPerMTok == nil {
		return Model{}, fmt.Errorf("model %s: prices.inputPerMTok and prices.outputPerMTok are required", id)
	}
	in := *e.Prices.InputPerMTok
	derived := func(own, multiplier *float64, name string) (float64, error) {
		switch {
		case own != nil:
			return *own, nil
		case multiplier != nil:
			return *multiplier * in, nil
		default:
			return 0, fmt.Errorf("model %s: prices.%s is missing and the catalog has no pricing rule for it", id, name)
		}
	}
	p := Prices{InputPerMTok: in, OutputPerMTok: *e.Prices.OutputPerMTok}
	var err error
	if p.CacheWrite5mPerMTok, err = derived(e.Prices.CacheWrite5mPerMTok, rules.CacheWrite5mMultiplier, "cacheWrite5mPerMTok"); err != nil {
		return Model{}, err
	}
	if p.CacheWrite1hPerMTok, err = derived(e.Prices.CacheWrite1hPerMTok, rules.CacheWrite1hMultiplier, "cacheWrite1hPerMTok"); err != nil {
		return Model{}, err
	}
	if p.CacheReadPerMTok, err = derived(e.Prices.CacheReadPerMTok, rules.CacheReadMultiplier, "cacheReadPerMTok"); err != nil {
		return Model{}, err
	}
	switch {
	case e.Prices.BatchDiscount != nil:
		p.BatchDiscount = *e.Prices.BatchDiscount
	case rules.BatchDiscount != nil:
		p.BatchDiscount = *rules.BatchDiscount
	}
	for _, price := range []struct {
		name  string
		value float64
	}{
		{"inputPerMTok", p.InputPerMTok}, {"outputPerMTok", p.OutputPerMTok},
		{"cacheWrite5mPerMTok", p.CacheWrite5mPerMTok}, {"cacheWrite1hPerMTok", p.CacheWrite1hPerMTok},
		{"cacheReadPerMTok", p.CacheReadPerMTok},
	} {
		if !finiteAtLeastZero(price.value) {
			return Model{}, fmt.Errorf("model %s: prices.%s must be a finite number >= 0, got %v", id, price.name, price.value)
		}
	}
	if !finiteAtLeastZero(p.BatchDiscount) || p.BatchDiscount > 1 {
		return Model{}, fmt.Errorf("model %s: batchDiscount must be between 0 and 1, got %v", id, p.BatchDiscount)
	}
	m := Model{ID: id, Class: ModelClass(strings.TrimSpace(string(e.Class))), Prices: p,
		CacheReadsCountTowardITPM: e.CacheReadsCountTowardITPM}
	for _, a := range e.Aliases {
		m.Aliases = append(m.Aliases, strings.TrimSpace(a))
	}
	if lc := e.LongContext; lc != nil {
		if lc.AboveInputTokens <= 0 || !finiteAtLeastZero(lc.InputPerMTok) || !finiteAtLeastZero(lc.OutputPerMTok) {
			return Model{}, fmt.Errorf("model %s: longContext needs aboveInputTokens > 0 and prices >= 0", id)
		}
		lcCopy := *lc
		m.LongContext = &lcCopy
	}
	return m, nil
}

func finiteAtLeastZero(v float64) bool {
	return v >= 0 && !math.IsInf(v, 0) && !math.IsNaN(v)
}
