package helm

import (
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"testing"

	. "github.com/onsi/gomega"
	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/rulefmt"
	"github.com/prometheus/prometheus/promql/parser"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/yaml"
)

// wantAlerts are the chart's alerts and their severities.
var wantAlerts = map[string]string{
	"ClaudecapUpstreamRateLimited":    "warning",
	"ClaudecapSignalsFailing":         "warning",
	"ClaudecapScalingLimitedByBudget": "info",
	"ClaudecapReconcileErrors":        "warning",
	"ClaudecapPoolNotConfigured":      "critical",
	"ClaudecapLimiterFailing":         "critical",
}

// alertRules renders the chart's PrometheusRule and reads its groups the way Prometheus reads
// a rule file (the Prometheus operator hands spec.groups to Prometheus as one): rulefmt
// refuses a bad expression, duration, label name or annotation template.
func alertRules(t *testing.T, flags ...string) (manifests, []rulefmt.Rule) {
	t.Helper()
	objs := render(t, release, namespace, flags...)
	rule, err := objs.only("PrometheusRule")
	if err != nil {
		t.Fatal(err)
	}
	if rule.GetAPIVersion() != "monitoring.coreos.com/v1" {
		t.Fatalf("PrometheusRule apiVersion %s", rule.GetAPIVersion())
	}
	spec, err := yaml.Marshal(rule.Object["spec"])
	if err != nil {
		t.Fatal(err)
	}
	groups, errs := rulefmt.Parse(spec, false, model.UTF8Validation)
	if len(errs) > 0 {
		t.Fatalf("Prometheus refuses the rules: %v\n%s", errors.Join(errs...), spec)
	}
	var rules []rulefmt.Rule
	for _, g := range groups.Groups {
		rules = append(rules, g.Rules...)
	}
	return objs, rules
}

// TestAlertsUseServedMetrics renders the PrometheusRule with every feature on and checks
// each alert: Prometheus accepts it, it has a severity, a summary and a description that
// says what to run, its expression reads only metrics and label values the code serves, and
// its annotations use only labels its expression keeps.
func TestAlertsUseServedMetrics(t *testing.T) {
	g := NewWithT(t)
	objs, rules := alertRules(t, "--values", allFeaturesValues)
	rule, _ := objs.only("PrometheusRule")
	g.Expect(rule.GetLabels()).To(HaveKeyWithValue("release", "prometheus"), "prometheusRule.labels")
	served := servedMetrics(t)

	severities := map[string]string{}
	for _, r := range rules {
		g.Expect(r.Alert).NotTo(BeEmpty(), "a recording rule %s", r.Record)
		severities[r.Alert] = r.Labels["severity"]
		g.Expect(r.Labels).To(HaveKeyWithValue("team", "platform"), "%s: prometheusRule.alertLabels", r.Alert)
		g.Expect(r.For).To(BeNumerically(">=", model.Duration(5*60e9)), "%s fires on a blip", r.Alert)
		g.Expect(r.Annotations["summary"]).NotTo(BeEmpty(), r.Alert)
		g.Expect(r.Annotations["description"]).To(ContainSubstring("kubectl "), "%s: the description says what to run", r.Alert)
		g.Expect(r.Annotations["runbook_url"]).To(HavePrefix("https://"), r.Alert)
		g.Expect(served.checkQuery(r.Expr)).To(Succeed(), "%s reads what the code serves", r.Alert)
		g.Expect(checkTemplateLabels(r)).To(Succeed())
	}
	g.Expect(severities).To(Equal(wantAlerts))
	t.Logf("checked: %d alerts parse as Prometheus rules and read only served metrics", len(rules))
}

// TestAlertsCanBeLeftOut renders the rule with two alerts disabled and no runbook URL.
func TestAlertsCanBeLeftOut(t *testing.T) {
	g := NewWithT(t)
	_, rules := alertRules(t, "--set", "prometheusRule.enabled=true,prometheusRule.runbookURL=",
		"--set", "prometheusRule.disabledAlerts={ClaudecapScalingLimitedByBudget,ClaudecapReconcileErrors}")
	var names []string
	for _, r := range rules {
		names = append(names, r.Alert)
		g.Expect(r.Annotations).NotTo(HaveKey("runbook_url"))
		g.Expect(r.Labels).To(Equal(map[string]string{"severity": wantAlerts[r.Alert]}))
	}
	g.Expect(names).To(ConsistOf("ClaudecapUpstreamRateLimited", "ClaudecapSignalsFailing",
		"ClaudecapPoolNotConfigured", "ClaudecapLimiterFailing"))
}

// annotationLabel finds the labels an alert's annotations print.
var annotationLabel = regexp.MustCompile(`\$labels\.([a-zA-Z_][a-zA-Z0-9_]*)`)

// checkTemplateLabels checks that every $labels.x an alert's annotations print is a label its
// expression's result has: a label aggregated away prints as an empty string.
func checkTemplateLabels(r rulefmt.Rule) error {
	expr, err := parser.ParseExpr(r.Expr)
	if err != nil {
		return err
	}
	kept, known := resultLabels(expr)
	if !known {
		return fmt.Errorf("%s: cannot tell which labels %q keeps; aggregate with by (...)", r.Alert, r.Expr)
	}
	var problems []error
	for key, text := range r.Annotations {
		for _, m := range annotationLabel.FindAllStringSubmatch(text, -1) {
			if !slices.Contains(kept, m[1]) {
				problems = append(problems, fmt.Errorf("%s: annotation %s prints $labels.%s, but the expression keeps only %v", r.Alert, key, m[1], kept))
			}
		}
	}
	return errors.Join(problems...)
}

// resultLabels returns the labels of an alert expression's result when it ends in an
// aggregation by (...) compared with something: the shape of every alert of the chart.
func resultLabels(expr parser.Expr) ([]string, bool) {
	switch e := expr.(type) {
	case *parser.ParenExpr:
		return resultLabels(e.Expr)
	case *parser.BinaryExpr:
		if e.VectorMatching != nil && (e.VectorMatching.Card != parser.CardOneToOne || len(e.VectorMatching.MatchingLabels) > 0) {
			return nil, false
		}
		return resultLabels(e.LHS)
	case *parser.AggregateExpr:
		if e.Without {
			return nil, false
		}
		return e.Grouping, true
	}
	return nil, false
}

// grafanaDashboard is the part of Grafana's dashboard JSON the test reads.
type grafanaDashboard struct {
	UID        string         `json:"uid"`
	Title      string         `json:"title"`
	Panels     []grafanaPanel `json:"panels"`
	Templating struct {
		List []struct {
			Name  string `json:"name"`
			Type  string `json:"type"`
			Query any    `json:"query"` // a string, or {query: ...}
		} `json:"list"`
	} `json:"templating"`
}

type grafanaPanel struct {
	ID         int               `json:"id"`
	Type       string            `json:"type"`
	Title      string            `json:"title"`
	Datasource map[string]string `json:"datasource"`
	Targets    []struct {
		RefID string `json:"refId"`
		Expr  string `json:"expr"`
	} `json:"targets"`
	Panels []grafanaPanel `json:"panels"` // of a collapsed row
}

// grafanaIntervals are the interval variables Grafana fills in before it sends a query.
var grafanaIntervals = strings.NewReplacer("$__rate_interval", "5m", "$__interval", "1m", "$__range", "6h")

// labelValuesQuery is the label_values(selector, label) query of a Grafana variable.
var labelValuesQuery = regexp.MustCompile(`^label_values\((.+),\s*([a-zA-Z_][a-zA-Z0-9_]*)\)$`)

// TestDashboardQueriesUseServedMetrics renders the Grafana dashboard ConfigMap and checks
// that each panel query and variable query parses as PromQL and reads only what the code
// serves, and that the panels a platform team looks for are there with the series they need.
func TestDashboardQueriesUseServedMetrics(t *testing.T) {
	g := NewWithT(t)
	objs := render(t, release, namespace, "--values", allFeaturesValues)
	cm := objs.find("ConfigMap", release+"-dashboard")
	g.Expect(cm).NotTo(BeNil(), "the dashboard ConfigMap")
	g.Expect(cm.GetLabels()).To(HaveKeyWithValue("grafana_dashboard", "1"), "the label Grafana's sidecar looks for")
	g.Expect(cm.GetLabels()).To(HaveKeyWithValue("team", "platform"))
	g.Expect(cm.GetAnnotations()).To(HaveKeyWithValue("grafana_folder", "Operators"))
	data, _, err := unstructured.NestedString(cm.Object, "data", "claudecap.json")
	g.Expect(err).NotTo(HaveOccurred())
	var dash grafanaDashboard
	g.Expect(json.Unmarshal([]byte(data), &dash)).To(Succeed(), "the dashboard is JSON")
	g.Expect(dash.UID).NotTo(BeEmpty())
	g.Expect(dash.Title).NotTo(BeEmpty())
	served := servedMetrics(t)

	queried := map[string][]string{} // panel title -> metrics its queries read
	ids := map[int]bool{}
	queries := 0
	var walk func(panels []grafanaPanel)
	walk = func(panels []grafanaPanel) {
		for _, p := range panels {
			g.Expect(ids).NotTo(HaveKey(p.ID), "panel id %d of %q is not unique", p.ID, p.Title)
			ids[p.ID] = true
			walk(p.Panels)
			if p.Type == "row" {
				continue
			}
			g.Expect(p.Targets).NotTo(BeEmpty(), "panel %q has no query", p.Title)
			g.Expect(p.Datasource).To(HaveKeyWithValue("uid", "${datasource}"), "panel %q uses the data source variable", p.Title)
			for _, target := range p.Targets {
				query := grafanaIntervals.Replace(target.Expr)
				g.Expect(served.checkQuery(query)).To(Succeed(), "panel %q, query %s", p.Title, target.RefID)
				names, err := metricNames(query)
				g.Expect(err).NotTo(HaveOccurred())
				queried[p.Title] = append(queried[p.Title], names...)
				queries++
			}
		}
	}
	walk(dash.Panels)

	variables := 0
	for _, v := range dash.Templating.List {
		if v.Type != "query" {
			continue
		}
		query, _ := v.Query.(string)
		if m, ok := v.Query.(map[string]any); ok {
			query, _ = m["query"].(string)
		}
		match := labelValuesQuery.FindStringSubmatch(query)
		g.Expect(match).NotTo(BeNil(), "variable %s: want label_values(selector, label), got %q", v.Name, query)
		g.Expect(served.checkQuery(match[1])).To(Succeed(), "variable %s", v.Name)
		variables++
	}
	g.Expect(variables).To(BeNumerically(">", 0), "the dashboard has query variables")

	want := map[string][]string{
		"Replicas: desired vs demand vs cap":            {"claudecap_cap_replicas", "claudecap_demand_replicas", "claudecap_desired_replicas"},
		"Requests per minute: allocation vs usage":      {"claudecap_allocation_per_minute", "claudecap_proxy_admitted_total"},
		"Input tokens per minute: allocation vs usage":  {"claudecap_allocation_per_minute", "claudecap_proxy_tokens_total"},
		"Output tokens per minute: allocation vs usage": {"claudecap_allocation_per_minute", "claudecap_proxy_tokens_total"},
		"429s per minute: upstream vs the proxies' own": {"claudecap_proxy_refused_total", "claudecap_proxy_upstream_responses_total"},
		"Proxy admission wait":                          {"claudecap_proxy_admission_wait_seconds_bucket"},
		"Reconcile errors per second":                   {"controller_runtime_reconcile_errors_total", "controller_runtime_reconcile_total"},
	}
	for title, metrics := range want {
		g.Expect(queried).To(HaveKey(title), "a panel titled %q", title)
		got := slices.Compact(slices.Sorted(slices.Values(queried[title])))
		g.Expect(got).To(Equal(metrics), "metrics of panel %q", title)
	}
	t.Logf("checked: %d panel queries and %d variable queries of the dashboard parse and read only served metrics", queries, variables)
}

// TestServedMetricsCheckCatchesRenames feeds checkQuery the mistakes it exists to catch, so
// that a check that passes everything cannot go unnoticed, and the names it must accept.
func TestServedMetricsCheckCatchesRenames(t *testing.T) {
	served := servedMetrics(t)
	good := []string{
		`claudecap_desired_replicas`,
		`sum by (namespace) (claudecap_allocation_per_minute{dimension="OutputTokens"})`,
		`histogram_quantile(0.99, sum by (le) (rate(claudecap_reconcile_duration_seconds_bucket[5m])))`,
		`rate(controller_runtime_reconcile_errors_total{controller="claudeorganization"}[5m])`,
		`increase(claudecap_proxy_limiter_errors_total{reason=~"unavailable|not_configured", namespace="ai"}[5m])`,
		`claudecap_proxy_admission_wait_seconds_count{class=~"sonnet.*"}`,
	}
	for _, query := range good {
		if err := served.checkQuery(query); err != nil {
			t.Errorf("checkQuery refuses a query of served metrics: %v", err)
		}
	}
	bad := []struct{ query, want string }{
		{`claudecap_desired_replica`, "claudecap_desired_replica is served by neither"},
		{`rate(claudecap_proxy_upstream_response_total{code="429"}[5m])`, "claudecap_proxy_upstream_response_total is served by neither"},
		{`claudecap_proxy_limiter_errors_total{reason="not_configred"}`, `label reason is never "not_configred"`},
		{`claudecap_proxy_tokens_total{klass="sonnet-4"}`, "has no label klass"},
		{`claudecap_proxy_upstream_responses_total{code=~"5.."}`, "matches none of the values"},
		{`controller_runtime_reconcile_errors_total{controller=~"claudecapacity|claudecapacities"}`, `no controller named "claudecapacities"`},
		{`claudecap_allocation_per_minute{dimension="input"}`, `label dimension is never "input"`},
		{`sum(rate(claudecap_signal_errors_total[5m])`, "does not parse"},
		{`vector(1) > 0`, "reads no metric"},
	}
	for _, tc := range bad {
		err := served.checkQuery(tc.query)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("checkQuery(%s) = %v, want an error containing %q", tc.query, err, tc.want)
		}
	}
	t.Logf("checked: %d queries of served metrics pass, %d broken ones are caught", len(good), len(bad))
}
