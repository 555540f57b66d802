package helm

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net/http"
	"net/http/httptest"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql/parser"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	ctrlmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	capacityv1alpha1 "github.com/claudecap/claudecap/api/v1alpha1"
	"github.com/claudecap/claudecap/controllers"
	"github.com/claudecap/claudecap/pkg/dimension"
	"github.com/claudecap/claudecap/pkg/proxy"
	"github.com/claudecap/claudecap/pkg/ratelimit"
)

// The chart's alerts and dashboard query metrics by name and label value; a renamed metric
// or label value would leave an alert that never fires and a panel that stays empty. served
// finds out, in the test process, what the code really serves, and checkQuery holds a PromQL
// query to it.
//
//   - The manager: the controllers package registers its claudecap_* collectors, and
//     controller-runtime its controller_runtime_* ones, with ctrlmetrics.Registry, which the
//     manager serves at /metrics. A vector has no series before its first observation, so a
//     name is looked up by registering a probe of that name, which the registry refuses when
//     it has the name already.
//   - The manager's controller names (the controller label of controller_runtime_*):
//     controllers.Setup registers the controllers on a manager that is never started, and
//     controller-runtime refuses a second controller of a name already taken.
//   - The proxy: a real pkg/proxy in front of a fake Messages API on loopback, driven
//     through each outcome the alerts and panels watch (admitted, upstream 429, no room,
//     pool not configured, limiter unavailable, limiter failing), then scraped at /metrics:
//     every name with the label values it really emits.
type served struct {
	proxy map[string]*dto.MetricFamily

	mu          sync.Mutex
	controllers map[string]bool // controller name -> taken; the first answer is kept
}

var (
	servedOnce sync.Once
	servedVal  *served
	servedErr  error
)

// servedMetrics gathers what the code serves, once per test process.
func servedMetrics(t *testing.T) *served {
	t.Helper()
	servedOnce.Do(func() {
		servedVal = &served{controllers: map[string]bool{}}
		if servedErr = registerControllers(cluster.config); servedErr != nil {
			return
		}
		servedVal.proxy, servedErr = scrapeProxy()
	})
	if servedErr != nil {
		t.Fatalf("gathering the metrics the code serves: %v", servedErr)
	}
	return servedVal
}

// registerControllers sets the operator's controllers up on a manager that is never started,
// so that their names are taken in controller-runtime's registry of names. A fixed REST
// mapper keeps the setup from asking the API server about kinds it may not have yet.
func registerControllers(config *rest.Config) error {
	scheme := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(scheme); err != nil {
		return err
	}
	if err := capacityv1alpha1.AddToScheme(scheme); err != nil {
		return err
	}
	mapper := meta.NewDefaultRESTMapper(nil)
	for gvk := range scheme.AllKnownTypes() {
		mapper.Add(gvk, meta.RESTScopeNamespace)
	}
	mgr, err := ctrl.NewManager(config, ctrl.Options{
		Scheme:                 scheme,
		Metrics:                metricsserver.Options{BindAddress: "0"},
		HealthProbeBindAddress: "0",
		MapperProvider:         func(*rest.Config, *http.Client) (meta.RESTMapper, error) { return mapper, nil },
	})
	if err != nil {
		return fmt.Errorf("creating a manager: %w", err)
	}
	if _, err := controllers.Setup(mgr, controllers.Options{}); err != nil {
		return fmt.Errorf("setting the controllers up: %w", err)
	}
	return nil
}

// controllerExists reports whether the operator has a controller of that name (the value
// of the controller label of controller-runtime's metrics).
func (s *served) controllerExists(name string) (bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if taken, ok := s.controllers[name]; ok {
		return taken, nil
	}
	// Creating a controller takes the name: a name nobody had is now taken by this probe,
	// which is why the first answer is remembered.
	_, err := controller.NewUnmanaged(name, controller.Options{Reconciler: reconcile.Func(
		func(context.Context, reconcile.Request) (reconcile.Result, error) { return reconcile.Result{}, nil })})
	switch {
	case err == nil:
		s.controllers[name] = false
	case strings.Contains(err.Error(), "already exists"):
		s.controllers[name] = true
	default:
		return false, fmt.Errorf("probing for controller %q: %w", name, err)
	}
	return s.controllers[name], nil
}

// managerServes reports whether the manager's registry has a metric of that name.
func managerServes(name string) (bool, error) {
	probe := prometheus.NewGauge(prometheus.GaugeOpts{Name: name, Help: "test/helm: is this name registered?"})
	err := ctrlmetrics.Registry.Register(probe)
	if err == nil {
		ctrlmetrics.Registry.Unregister(probe)
		return false, nil
	}
	var already prometheus.AlreadyRegisteredError
	if errors.As(err, &already) || strings.Contains(err.Error(), "same fully-qualified name") {
		return true, nil
	}
	return false, fmt.Errorf("probing the manager's registry for %s: %w", name, err)
}

// The suffixes of the series a histogram (or summary) is exposed as.
var histogramSuffixes = []string{"_bucket", "_sum", "_count"}

// targetLabels are added by Prometheus to every series it scrapes, whatever the code serves.
var targetLabels = []string{"namespace", "pod", "container", "instance", "job", "service", "endpoint"}

// allocationDimensions are the dimension label values of claudecap_allocation_per_minute.
func allocationDimensions() []string {
	var out []string
	for _, d := range dimension.All() {
		out = append(out, d.Name())
	}
	return out
}

// checkQuery parses a PromQL query with Prometheus's parser and checks every series it
// selects: the metric is served by the manager or the proxy, and each label value it
// matches on is one the code emits (where the test can know them: every label of the
// proxy's metrics, the controller names, the allocation dimensions).
func (s *served) checkQuery(query string) error {
	expr, err := parser.ParseExpr(query)
	if err != nil {
		return fmt.Errorf("%q does not parse: %w", query, err)
	}
	var problems []error
	selectors := 0
	parser.Inspect(expr, func(node parser.Node, _ []parser.Node) error {
		if vs, ok := node.(*parser.VectorSelector); ok {
			selectors++
			if err := s.checkSelector(vs); err != nil {
				problems = append(problems, fmt.Errorf("%q: %w", query, err))
			}
		}
		return nil
	})
	if selectors == 0 {
		problems = append(problems, fmt.Errorf("%q reads no metric", query))
	}
	return errors.Join(problems...)
}

func (s *served) checkSelector(vs *parser.VectorSelector) error {
	name := vs.Name
	if name == "" {
		return fmt.Errorf("selector %s names no metric", vs)
	}
	if family, histogram := s.proxyFamily(name); family != nil {
		return checkProxyMatchers(family, histogram, vs.LabelMatchers)
	}
	ok, err := managerServes(name)
	for _, suffix := range histogramSuffixes {
		if base, cut := strings.CutSuffix(name, suffix); cut && !ok && err == nil {
			ok, err = managerServes(base)
		}
	}
	if err != nil {
		return err
	}
	if !ok {
		return fmt.Errorf("metric %s is served by neither the manager nor the proxy", name)
	}
	return s.checkManagerMatchers(name, vs.LabelMatchers)
}

// proxyFamily returns the proxy's family a series name belongs to, and whether the name is
// one of a histogram's series (name_bucket, _sum, _count).
func (s *served) proxyFamily(name string) (*dto.MetricFamily, bool) {
	if f, ok := s.proxy[name]; ok {
		return f, false
	}
	for _, suffix := range histogramSuffixes {
		if base, ok := strings.CutSuffix(name, suffix); ok {
			if f := s.proxy[base]; f != nil && (f.GetType() == dto.MetricType_HISTOGRAM || suffix != "_bucket" && f.GetType() == dto.MetricType_SUMMARY) {
				return f, true
			}
		}
	}
	return nil, false
}

func checkProxyMatchers(family *dto.MetricFamily, histogram bool, matchers []*labels.Matcher) error {
	values := map[string][]string{}
	for _, m := range family.GetMetric() {
		for _, l := range m.GetLabel() {
			if !slices.Contains(values[l.GetName()], l.GetValue()) {
				values[l.GetName()] = append(values[l.GetName()], l.GetValue())
			}
		}
	}
	var problems []error
	for _, m := range matchers {
		switch {
		case m.Name == model.MetricNameLabel || slices.Contains(targetLabels, m.Name):
		case m.Name == "le" && histogram:
		case values[m.Name] == nil:
			problems = append(problems, fmt.Errorf("%s has no label %s (it has %v)", family.GetName(), m.Name, slices.Sorted(maps.Keys(values))))
		default:
			if err := checkValues(m, values[m.Name]); err != nil {
				problems = append(problems, fmt.Errorf("%s: %w", family.GetName(), err))
			}
		}
	}
	return errors.Join(problems...)
}

func (s *served) checkManagerMatchers(name string, matchers []*labels.Matcher) error {
	var problems []error
	for _, m := range matchers {
		switch {
		case m.Name == "controller" && strings.HasPrefix(name, "controller_runtime_"):
			for _, v := range literalValues(m) {
				exists, err := s.controllerExists(v)
				if err != nil {
					return err
				}
				if !exists {
					problems = append(problems, fmt.Errorf("%s{%s}: the operator has no controller named %q", name, m, v))
				}
			}
		case m.Name == "dimension" && name == "claudecap_allocation_per_minute":
			if err := checkValues(m, allocationDimensions()); err != nil {
				problems = append(problems, fmt.Errorf("%s: %w", name, err))
			}
		}
	}
	return errors.Join(problems...)
}

// checkValues checks that what a matcher matches on is among the values the code emits:
// each literal of an = or =~ matcher, or for another regular expression at least one value.
// Grafana variables ($namespace) and negative matchers are not checked.
func checkValues(m *labels.Matcher, emitted []string) error {
	if strings.Contains(m.Value, "$") || (m.Type != labels.MatchEqual && m.Type != labels.MatchRegexp) {
		return nil
	}
	if literals := literalValues(m); literals != nil {
		for _, v := range literals {
			if !slices.Contains(emitted, v) {
				return fmt.Errorf("label %s is never %q (it is one of %v)", m.Name, v, emitted)
			}
		}
		return nil
	}
	if !slices.ContainsFunc(emitted, m.Matches) {
		return fmt.Errorf("%s matches none of the values %v", m, emitted)
	}
	return nil
}

// literalAlternation is a regular expression made of plain words: a|b|c.
var literalAlternation = regexp.MustCompile(`^[A-Za-z0-9_]+(\|[A-Za-z0-9_]+)*$`)

// literalValues returns the values an = matcher, or an =~ matcher of plain alternatives,
// matches; nil for anything else.
func literalValues(m *labels.Matcher) []string {
	switch {
	case m.Type == labels.MatchEqual:
		return []string{m.Value}
	case m.Type == labels.MatchRegexp && literalAlternation.MatchString(m.Value):
		return strings.Split(m.Value, "|")
	}
	return nil
}

// metricNames returns the metric names a query selects, sorted, without repeats.
func metricNames(query string) ([]string, error) {
	expr, err := parser.ParseExpr(query)
	if err != nil {
		return nil, err
	}
	var names []string
	parser.Inspect(expr, func(node parser.Node, _ []parser.Node) error {
		if vs, ok := node.(*parser.VectorSelector); ok && !slices.Contains(names, vs.Name) {
			names = append(names, vs.Name)
		}
		return nil
	})
	slices.Sort(names)
	return names, nil
}

// scrapeProxy drives a real proxy through the outcomes the alerts and the dashboard watch
// and returns what it then serves at /metrics.
func scrapeProxy() (map[string]*dto.MetricFamily, error) {
	// The fake API answers in order: the first admitted call gets 200, the second 429.
	statuses := make(chan int, 2)
	statuses <- http.StatusOK
	statuses <- http.StatusTooManyRequests
	api := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "application/json")
		select {
		case status := <-statuses:
			if status == http.StatusOK {
				_, _ = io.WriteString(w, `{"id":"msg_1","type":"message","role":"assistant","model":"claude-sonnet-4-6",`+
					`"content":[{"type":"text","text":"ok"}],"stop_reason":"end_turn","usage":{"input_tokens":12,"output_tokens":3}}`)
				return
			}
			w.Header().Set("Retry-After", "1")
			w.WriteHeader(status)
			_, _ = io.WriteString(w, `{"type":"error","error":{"type":"rate_limit_error","message":"rate limited"}}`)
		default:
			w.WriteHeader(http.StatusInternalServerError)
		}
	}))
	defer api.Close()

	limiter := &scriptedLimiter{answers: []error{
		nil, // admitted, upstream 200
		nil, // admitted, upstream 429
		&ratelimit.RateLimitedError{Pool: ratelimit.PoolKey{Organization: "acme", Class: "sonnet-4"},
			Binding: dimension.OutputTokens, Wait: [3]time.Duration{0, 0, time.Second}},
		fmt.Errorf("reading bucket: %w", ratelimit.ErrPoolNotConfigured),
		fmt.Errorf("%w: connection refused", ratelimit.ErrUnavailable),
		errors.New("the limiter script failed"),
	}}
	wantStatus := []int{http.StatusOK, http.StatusTooManyRequests, http.StatusTooManyRequests,
		http.StatusServiceUnavailable, http.StatusServiceUnavailable, http.StatusInternalServerError}

	p, err := proxy.New(proxy.Config{Upstream: api.URL, Logger: slog.New(slog.DiscardHandler)}, limiter)
	if err != nil {
		return nil, fmt.Errorf("creating a proxy: %w", err)
	}
	for i, want := range wantStatus {
		req := httptest.NewRequest(http.MethodPost, "http://localhost/v1/messages",
			strings.NewReader(`{"model":"claude-sonnet-4-6","max_tokens":16,"messages":[{"role":"user","content":"hi"}]}`))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("X-Api-Key", "sk-ant-test")
		req.Header.Set("Anthropic-Version", "2023-06-01")
		rec := httptest.NewRecorder()
		p.Handler().ServeHTTP(rec, req)
		if rec.Code != want {
			return nil, fmt.Errorf("call %d through the proxy: status %d, want %d: %s", i+1, rec.Code, want, rec.Body)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := p.Close(ctx); err != nil { // settlements are counted in the background
		return nil, fmt.Errorf("draining the proxy: %w", err)
	}

	rec := httptest.NewRecorder()
	p.OpsHandler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "http://10.0.0.1:8082/metrics", nil))
	if rec.Code != http.StatusOK {
		return nil, fmt.Errorf("GET /metrics of the proxy: status %d: %s", rec.Code, rec.Body)
	}
	text := expfmt.NewTextParser(model.UTF8Validation)
	families, err := text.TextToMetricFamilies(rec.Body)
	if err != nil {
		return nil, fmt.Errorf("parsing the proxy's /metrics: %w", err)
	}
	return families, nil
}

// scriptedLimiter answers the proxy's admissions from a script: nil admits the call, an
// error refuses it.
type scriptedLimiter struct {
	mu      sync.Mutex
	answers []error
}

func (l *scriptedLimiter) TryReserve(context.Context, string, ratelimit.Amounts) (proxy.Reservation, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.answers) == 0 {
		return nil, errors.New("scriptedLimiter: more admissions than scripted")
	}
	err := l.answers[0]
	l.answers = l.answers[1:]
	if err != nil {
		return nil, err
	}
	return settled{}, nil
}

func (l *scriptedLimiter) Wait(ctx context.Context, class string, cost ratelimit.Amounts) (proxy.Reservation, error) {
	return l.TryReserve(ctx, class, cost)
}

func (*scriptedLimiter) RecordUpstream(context.Context, string, ratelimit.Upstream) error { return nil }

func (*scriptedLimiter) RecordUpstreamErrors(context.Context, string, ratelimit.UsageSample) error {
	return nil
}

func (*scriptedLimiter) Ready(context.Context) error { return nil }

// settled is a reservation that settles and cancels without a limiter behind it.
type settled struct{}

func (settled) Settle(context.Context, ratelimit.Actual) error { return nil }
func (settled) Cancel(context.Context) error                   { return nil }
