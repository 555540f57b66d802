package cli

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"

	"github.com/claudecap/claudecap/pkg/dimension"

	"github.com/spf13/cobra"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/yaml"

	capacityv1alpha1 "github.com/claudecap/claudecap/api/v1alpha1"
	"github.com/claudecap/claudecap/internal/specconv"
	"github.com/claudecap/claudecap/pkg/capacity"
	"github.com/claudecap/claudecap/pkg/loadtest"
)

const (
	planDefaultModel = "claude-sonnet-4-5"

	planOutputTable = "table"
	planOutputJSON  = "json"
	planOutputYAML  = "yaml"
)

// planOptions is the command line of claudecap plan.
type planOptions struct {
	manifest    string
	loadtest    string
	catalogPath string
	output      string

	model                      string
	rpm, inputTokens           float64
	outputTokens               float64
	cacheHitRatio              float64
	cacheWrite5m, cacheWrite1h float64
	batchShare                 float64
	headroom                   float64
	perReplicaRPM              float64
	tier                       string
	limitRPM, limitITPM        int64
	limitOTPM                  int64
}

func newPlanCommand() *cobra.Command {
	opts := &planOptions{}
	cmd := &cobra.Command{
		Use:   "plan",
		Short: "Work out the rate limits, cost, usage tier and replicas a workload needs",
		Long: `plan works out what a workload needs from the Claude API: requests, input tokens and
output tokens per minute as Anthropic counts them, the cost per request and per 30-day month,
the smallest usage tier that carries it at the headroom, which limit binds first, and how
many worker replicas serve it.

Describe the traffic with flags, or point -f at a ClaudeCapacity manifest; flags given
explicitly override the manifest. Prices and limits come from a dated built-in catalog that
--catalog FILE overrides (see docs/planning.md).`,
		Example: `  # 100 requests/min of 500 input and 200 output tokens on Sonnet 4
  claudecap plan --rpm 100 --input-tokens 500 --output-tokens 200 --model claude-sonnet-4

  # With prompt caching, a third of the traffic through Message Batches, 30 requests/min per worker
  claudecap plan --rpm 300 --input-tokens 1200 --output-tokens 300 --cache-hit-ratio 0.6 \
    --batch-share 0.3 --per-replica-rpm 30

  # A manifest, with a different model, as JSON
  claudecap plan -f summarizer.yaml --model claude-haiku-4-5 -o json

  # What a measured load test needs at ten times its rate
  claudecap loadtest --base-url http://127.0.0.1:8080 --rate 5 --duration 1m -o json > run.json
  claudecap plan --from-loadtest run.json --rpm 3000`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return opts.run(cmd)
		},
	}

	f := cmd.Flags()
	f.StringVarP(&opts.manifest, "file", "f", "", "ClaudeCapacity manifest to plan (- reads stdin)")
	f.StringVar(&opts.loadtest, "from-loadtest", "",
		"a `claudecap loadtest -o json` report: plan its measured traffic, tokens, per-replica throughput and reported limits")
	f.StringVar(&opts.catalogPath, "catalog", "", "model catalog YAML that overrides or extends the built-in prices and limits")
	f.StringVarP(&opts.output, "output", "o", planOutputTable, "output format: table, json or yaml")
	f.StringVar(&opts.model, "model", planDefaultModel, "model id or alias")
	f.Float64Var(&opts.rpm, "rpm", 0, "requests per minute, batch requests included")
	f.Float64Var(&opts.inputTokens, "input-tokens", 0, "average input tokens per request, cached tokens included")
	f.Float64Var(&opts.outputTokens, "output-tokens", 0, "average output tokens per request")
	f.Float64Var(&opts.cacheHitRatio, "cache-hit-ratio", 0, "share of input tokens read from the prompt cache, 0 to 1")
	f.Float64Var(&opts.cacheWrite5m, "cache-write-ratio", 0, "share of input tokens written to the prompt cache with a 5-minute TTL, 0 to 1")
	f.Float64Var(&opts.cacheWrite1h, "cache-write-1h-ratio", 0, "share of input tokens written to the prompt cache with a 1-hour TTL, 0 to 1")
	f.Float64Var(&opts.batchShare, "batch-share", 0, "share of requests sent through Message Batches, 0 to 1")
	f.Float64Var(&opts.headroom, "headroom", capacity.DefaultPlanHeadroomPercent,
		fmt.Sprintf("percent of each limit the plan may use; with -f the manifest's headroomPercent (%d if unset) wins over this default",
			capacityv1alpha1.DefaultHeadroomPercent))
	f.Float64Var(&opts.perReplicaRPM, "per-replica-rpm", 0, "requests per minute one worker replica completes; 0 skips the replica count")
	f.StringVar(&opts.tier, "tier", "", "check the plan against this usage tier's limits")
	f.Int64Var(&opts.limitRPM, "limit-rpm", 0, "check the plan against this requests-per-minute limit")
	f.Int64Var(&opts.limitITPM, "limit-itpm", 0, "check the plan against this input-tokens-per-minute limit")
	f.Int64Var(&opts.limitOTPM, "limit-otpm", 0, "check the plan against this output-tokens-per-minute limit")

	registerPlanCompletions(cmd, opts)
	return cmd
}

// registerPlanCompletions completes models and tiers from the catalog in use, and the
// output formats. Registration fails only for a misspelled flag name, a programming error
// the command test catches.
func registerPlanCompletions(cmd *cobra.Command, opts *planOptions) {
	noFiles := cobra.ShellCompDirectiveNoFileComp
	_ = cmd.RegisterFlagCompletionFunc("model", func(_ *cobra.Command, _ []string, prefix string) ([]cobra.Completion, cobra.ShellCompDirective) {
		catalog, err := opts.catalog()
		if err != nil {
			return nil, cobra.ShellCompDirectiveError
		}
		var names []cobra.Completion
		for _, name := range catalog.ModelNames() {
			if strings.HasPrefix(name, prefix) {
				names = append(names, name)
			}
		}
		return names, noFiles
	})
	_ = cmd.RegisterFlagCompletionFunc("tier", func(*cobra.Command, []string, string) ([]cobra.Completion, cobra.ShellCompDirective) {
		catalog, err := opts.catalog()
		if err != nil {
			return nil, cobra.ShellCompDirectiveError
		}
		return catalog.Tiers(), noFiles
	})
	_ = cmd.RegisterFlagCompletionFunc("output", cobra.FixedCompletions([]cobra.Completion{
		cobra.CompletionWithDesc(planOutputTable, "aligned text for people"),
		cobra.CompletionWithDesc(planOutputJSON, "the full plan as JSON"),
		cobra.CompletionWithDesc(planOutputYAML, "the full plan as YAML"),
	}, noFiles))
	_ = cmd.MarkFlagFilename("file", "yaml", "yml", "json")
	_ = cmd.MarkFlagFilename("catalog", "yaml", "yml")
}

func (o *planOptions) run(cmd *cobra.Command) error {
	switch o.output {
	case planOutputTable, planOutputJSON, planOutputYAML:
	default:
		return fmt.Errorf("unknown output format %q: use table, json or yaml", o.output)
	}
	catalog, err := o.catalog()
	if err != nil {
		return err
	}
	in, err := o.planInput(cmd)
	if err != nil {
		return err
	}
	res, err := capacity.Plan(catalog, in)
	if err != nil {
		return fmt.Errorf("planning %s: %w", in.Model, err)
	}
	out := cmd.OutOrStdout()
	switch o.output {
	case planOutputJSON:
		enc := json.NewEncoder(out)
		enc.SetIndent("", "  ")
		return enc.Encode(res)
	case planOutputYAML:
		data, err := yaml.Marshal(res)
		if err != nil {
			return fmt.Errorf("writing the plan as YAML: %w", err)
		}
		_, err = out.Write(data)
		return err
	default:
		return writePlanTable(out, res)
	}
}

func (o *planOptions) catalog() (*capacity.Catalog, error) {
	if o.catalogPath == "" {
		return capacity.DefaultCatalog(), nil
	}
	return capacity.LoadCatalog(o.catalogPath)
}

// planInput starts from the manifest, if any, and applies the flags: all of them without a
// manifest, only those given explicitly with one.
func (o *planOptions) planInput(cmd *cobra.Command) (capacity.PlanInput, error) {
	flags := cmd.Flags()
	var in capacity.PlanInput
	base := o.manifest != "" || o.loadtest != ""
	if o.manifest != "" {
		cc, err := readClaudeCapacity(o.manifest, cmd.InOrStdin())
		if err != nil {
			return capacity.PlanInput{}, err
		}
		in = specconv.PlanInput(cc.Spec)
	}
	if o.loadtest != "" {
		if err := overlayLoadtest(&in, o.loadtest); err != nil {
			return capacity.PlanInput{}, err
		}
	}
	if !base {
		var missing []string
		for _, name := range []string{"rpm", "input-tokens", "output-tokens"} {
			if !flags.Changed(name) {
				missing = append(missing, "--"+name)
			}
		}
		if len(missing) > 0 {
			return capacity.PlanInput{}, fmt.Errorf("describe the traffic with %s, or plan a manifest with -f FILE",
				strings.Join(missing, ", "))
		}
	}
	apply := func(flag string, set func()) {
		if !base || flags.Changed(flag) {
			set()
		}
	}
	apply("model", func() { in.Model = o.model })
	apply("rpm", func() { in.RequestsPerMinute = o.rpm })
	apply("input-tokens", func() { in.AvgInputTokens = o.inputTokens })
	apply("output-tokens", func() { in.AvgOutputTokens = o.outputTokens })
	apply("cache-hit-ratio", func() { in.CacheHitRatio = o.cacheHitRatio })
	apply("cache-write-ratio", func() { in.CacheWrite5mRatio = o.cacheWrite5m })
	apply("cache-write-1h-ratio", func() { in.CacheWrite1hRatio = o.cacheWrite1h })
	apply("batch-share", func() { in.BatchShare = o.batchShare })
	if o.headroom <= 0 {
		// The planner reads 0 as "default"; on the command line it is a mistake.
		return capacity.PlanInput{}, fmt.Errorf("--headroom must be above 0 and at most 100 percent, got %v", o.headroom)
	}
	apply("headroom", func() { in.HeadroomPercent = o.headroom })
	if in.HeadroomPercent == 0 {
		in.HeadroomPercent = o.headroom
	}
	apply("per-replica-rpm", func() { in.ReplicaRequestsPerMinute = o.perReplicaRPM })

	limits := capacity.PlanLimits{}
	if in.Limits != nil {
		limits = *in.Limits
	}
	for _, l := range []struct {
		flag  string
		value *int64
		into  *int64
	}{
		{"limit-rpm", &o.limitRPM, &limits.Explicit[dimension.Requests]},
		{"limit-itpm", &o.limitITPM, &limits.Explicit[dimension.InputTokens]},
		{"limit-otpm", &o.limitOTPM, &limits.Explicit[dimension.OutputTokens]},
	} {
		if flags.Changed(l.flag) {
			if *l.value <= 0 {
				return capacity.PlanInput{}, fmt.Errorf("--%s must be a positive number of tokens or requests per minute, got %d", l.flag, *l.value)
			}
			*l.into = *l.value
		}
	}
	if flags.Changed("tier") {
		limits.Tier = o.tier
	}
	if limits != (capacity.PlanLimits{}) {
		in.Limits = &limits
	}
	return in, nil
}

// overlayLoadtest replaces the traffic in `in` with what a load test measured: successful
// requests per minute, average tokens, the cache hit ratio, the per-replica throughput
// (Little's law: per unit of concurrency) and the limits the API reported in its headers.
func overlayLoadtest(in *capacity.PlanInput, path string) error {
	file, err := os.Open(path) //nolint:gosec // the path is the user's own --from-loadtest argument.
	if err != nil {
		return fmt.Errorf("reading the load-test report: %w", err)
	}
	defer func() { _ = file.Close() }()
	report, err := loadtest.ReadReport(file)
	if err != nil {
		return fmt.Errorf("reading %s: %w", path, err)
	}
	if report.Requests.Succeeded == 0 || report.Tokens.AvgOutputTokens <= 0 {
		return fmt.Errorf("%s: the load test completed no request successfully, so it measured nothing to plan from", path)
	}
	if m := report.Config.Target.Model; m != "" && m != "mixed" {
		in.Model = m
	}
	in.RequestsPerMinute = report.Throughput.SuccessfulRequestsPerMinute
	in.AvgInputTokens = report.Tokens.AvgInputTokens
	in.AvgOutputTokens = report.Tokens.AvgOutputTokens
	in.CacheHitRatio = report.Tokens.CacheHitRatio
	if rpm := report.PerReplicaEquivalent.RequestsPerMinute; rpm > 0 {
		in.ReplicaRequestsPerMinute = rpm
	}
	var reported capacity.PlanLimits
	for _, d := range dimension.All() {
		reported.Explicit[d] = report.RateLimits[loadtest.DimensionOf(d)].Limit
	}
	if reported != (capacity.PlanLimits{}) {
		in.Limits = &reported
	}
	return nil
}

// readClaudeCapacity reads the one ClaudeCapacity of a YAML or JSON file that may hold
// several documents, as kubectl apply -f files often do.
func readClaudeCapacity(path string, stdin io.Reader) (*capacityv1alpha1.ClaudeCapacity, error) {
	r := stdin
	if path != "-" {
		file, err := os.Open(path) //nolint:gosec // the path is the user's own -f argument.
		if err != nil {
			return nil, fmt.Errorf("reading manifest: %w", err)
		}
		defer func() { _ = file.Close() }()
		r = file
	}
	docs := utilyaml.NewYAMLReader(bufio.NewReader(r))
	var found []*capacityv1alpha1.ClaudeCapacity
	for {
		doc, err := docs.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("reading manifest %s: %w", path, err)
		}
		var meta metav1.TypeMeta
		if err := yaml.Unmarshal(doc, &meta); err != nil {
			return nil, fmt.Errorf("manifest %s: %w", path, err)
		}
		if meta.Kind != "ClaudeCapacity" {
			continue
		}
		if group := strings.SplitN(meta.APIVersion, "/", 2)[0]; group != capacityv1alpha1.GroupVersion.Group {
			return nil, fmt.Errorf("manifest %s: apiVersion %q is not %s", path, meta.APIVersion, capacityv1alpha1.GroupVersion)
		}
		cc := &capacityv1alpha1.ClaudeCapacity{}
		if err := yaml.UnmarshalStrict(doc, cc); err != nil {
			return nil, fmt.Errorf("manifest %s: %w", path, err)
		}
		found = append(found, cc)
	}
	switch len(found) {
	case 0:
		return nil, fmt.Errorf("manifest %s holds no ClaudeCapacity (kind: ClaudeCapacity, apiVersion: %s)", path, capacityv1alpha1.GroupVersion)
	case 1:
		return found[0], nil
	default:
		names := make([]string, 0, len(found))
		for _, cc := range found {
			names = append(names, cc.Name)
		}
		return nil, fmt.Errorf("manifest %s holds %d ClaudeCapacities (%s); plan one at a time", path, len(found), strings.Join(names, ", "))
	}
}

// writePlanTable prints a plan for people: sections of aligned label/value lines, numbers
// with thousands separators, and the reasons in words.
func writePlanTable(out io.Writer, res capacity.PlanResult) error {
	w := tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
	p := func(format string, args ...any) { _, _ = fmt.Fprintf(w, format+"\n", args...) }
	// Each section is its own table: the tab stops of one do not stretch the others.
	for _, section := range []func(func(string, ...any), capacity.PlanResult){planNeeds, planTiers, planVerdict} {
		section(p, res)
		if err := w.Flush(); err != nil {
			return fmt.Errorf("writing the plan: %w", err)
		}
	}
	return nil
}

// planNeeds writes the input, what it needs per minute and what it costs.
func planNeeds(p func(string, ...any), res capacity.PlanResult) {
	in := res.Input
	p("Model\t%s (rate-limit pool %s, catalog as of %s)", res.Model, res.Class, res.CatalogAsOf)
	p("Traffic\t%s requests/min of %s input + %s output tokens", planQty(in.RequestsPerMinute), planQty(in.AvgInputTokens), planQty(in.AvgOutputTokens))
	if cache := planCacheWords(in); cache != "" {
		p("Prompt cache\t%s", cache)
	}
	if in.BatchShare > 0 {
		p("Message Batches\t%s of requests (%s/min), outside the per-minute limits", planPct(in.BatchShare), planQty(res.BatchRequestsPerMinute))
	}
	p("Headroom\t%s%% of each limit", planQty(in.HeadroomPercent))
	p("")
	p("Needed per minute")
	for _, d := range dimension.All() {
		line := "  " + planTitle(d) + "\t" + planQty(res.Needed[d])
		if d == dimension.InputTokens {
			switch {
			case in.CacheHitRatio == 0:
			case res.CacheReadsCountTowardITPM:
				line += "\t(cache reads count for this model)"
			default:
				line += fmt.Sprintf("\t(cache reads excluded, as Anthropic counts them; %s read in all)", planQty(res.InputTokensPerMinuteAll))
			}
		}
		p("%s", line)
	}
	p("")
	p("Cost (list prices)")
	p("  Per request\t%s", capacity.FormatUSD(res.Cost.PerRequestUSD))
	p("  Per month\t%s\t(30 days)", capacity.FormatUSD(res.Cost.MonthlyUSD))
	if planCacheWords(in) != "" {
		p("  Prompt cache saves\t%s\tper month", capacity.FormatUSD(res.Cost.MonthlyCacheSavingsUSD))
	}
	if in.BatchShare > 0 {
		p("  Batches save\t%s\tper month", capacity.FormatUSD(res.Cost.MonthlyBatchSavingsUSD))
	}
	if res.Cost.LongContextPricing {
		p("  \t(long-context prices: the average input is above the model's long-context threshold)")
	}
}

// planTiers writes how the needs fit each published tier.
func planTiers(p func(string, ...any), res capacity.PlanResult) {
	if len(res.Tiers) == 0 {
		return
	}
	p("")
	header := "Tier"
	for _, d := range dimension.All() {
		header += "\t" + planTitle(d) + "/min"
	}
	p("%s\tFits", header)
	for _, fit := range res.Tiers {
		verdict := "no"
		if fit.Fits {
			verdict = "yes"
		}
		if fit.Name == res.SmallestTier {
			verdict += "  <- smallest"
		}
		row := fit.Name
		for _, d := range dimension.All() {
			row += "\t" + planUsage(fit.Utilization[d], fit.Limits[d])
		}
		p("%s\t%s", row, verdict)
	}
}

// planVerdict writes the smallest tier, the replicas and whether the declared limits fit.
func planVerdict(p func(string, ...any), res capacity.PlanResult) {
	in := res.Input
	p("")
	smallest := res.SmallestTier
	if smallest == capacity.TierCustom {
		smallest = "none of the published tiers: custom limits"
	}
	if res.Binding != "" {
		smallest += ", bound by " + res.Binding.Words()
	}
	p("Smallest tier\t%s", smallest)
	p("\t%s", res.TierReason)
	if res.Replicas != nil {
		p("Replicas\t%d\t(at %s requests/min each)", *res.Replicas, planQty(in.ReplicaRequestsPerMinute))
	}
	if d := res.Declared; d != nil {
		verdict := "fit"
		if !d.Fits {
			verdict = "DO NOT FIT"
		}
		if in.Limits != nil && in.Limits.Tier != "" {
			verdict += " (" + in.Limits.Tier + ")"
		}
		limits := make([]string, 0, dimension.Count)
		for _, dim := range dimension.All() {
			limits = append(limits, planLimitText(d.Limits[dim])+" "+dim.Words())
		}
		p("Declared limits\t%s: %s per minute", verdict, strings.Join(limits, ", "))
		p("\t%s", d.Reason)
	}
}

// planTitle is the dimension's words with a capital, as a table heading: "Input tokens".
func planTitle(d dimension.Dimension) string {
	w := d.Words()
	return strings.ToUpper(w[:1]) + w[1:]
}

// planCacheWords describes the prompt-cache shares that are set, or nothing without caching.
func planCacheWords(in capacity.PlanInput) string {
	var parts []string
	if in.CacheHitRatio > 0 {
		parts = append(parts, planPct(in.CacheHitRatio)+" of input tokens read from cache")
	}
	if in.CacheWrite5mRatio > 0 {
		parts = append(parts, planPct(in.CacheWrite5mRatio)+" written with a 5-minute TTL")
	}
	if in.CacheWrite1hRatio > 0 {
		parts = append(parts, planPct(in.CacheWrite1hRatio)+" written with a 1-hour TTL")
	}
	return strings.Join(parts, ", ")
}

func planQty(v float64) string { return capacity.FormatQuantity(v) }

// pct writes a share as a percentage with at most one decimal.
func planPct(share float64) string {
	return strings.TrimSuffix(fmt.Sprintf("%.1f", share*100), ".0") + "%"
}

// usage writes "22.2% of 90,000": how much of a limit the plan uses.
func planUsage(share float64, limit int64) string {
	return planPct(share) + " of " + planQty(float64(limit))
}

func planLimitText(limit int64) string {
	if limit == 0 {
		return "unchecked"
	}
	return planQty(float64(limit))
}
