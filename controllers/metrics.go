package controllers

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
	ctrlmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"

	capacityv1alpha1 "github.com/claudecap/claudecap/api/v1alpha1"
	"github.com/claudecap/claudecap/pkg/capacity"
	"github.com/claudecap/claudecap/pkg/dimension"
)

// controllerMetrics are served on the manager's metrics endpoint, labeled by the
// ClaudeCapacity's namespace and name.
type controllerMetrics struct {
	demand, capReplicas, desired *prometheus.GaugeVec
	backlog, inFlight, arrivals  *prometheus.GaugeVec
	allocation                   *prometheus.GaugeVec
	signalErrors, scales         *prometheus.CounterVec
	reconcileSeconds             prometheus.Histogram
}

// metricsNamespace prefixes every metric name; labelNamespace and labelName identify the
// ClaudeCapacity a series describes.
const (
	metricsNamespace = "claudecap"
	labelNamespace   = "namespace"
	labelName        = "name"
)

var workloadLabels = []string{labelNamespace, labelName}

func newControllerMetrics(reg prometheus.Registerer) *controllerMetrics {
	gauge := func(name, help string, labels ...string) *prometheus.GaugeVec {
		return prometheus.NewGaugeVec(prometheus.GaugeOpts{Namespace: metricsNamespace, Name: name, Help: help},
			append(append([]string{}, workloadLabels...), labels...))
	}
	m := &controllerMetrics{
		demand:      gauge("demand_replicas", "Replicas the queue asks for."),
		capReplicas: gauge("cap_replicas", "Most replicas the workload's share of the pool budget allows."),
		desired:     gauge("desired_replicas", "Replicas the controller wants the target to run."),
		backlog:     gauge("queue_backlog", "Jobs waiting in the queue."),
		inFlight:    gauge("queue_in_flight", "Jobs being worked on."),
		arrivals:    gauge("queue_arrivals_per_minute", "Smoothed estimate of jobs arriving per minute."),
		allocation:  gauge("allocation_per_minute", "The workload's share of the pool budget per minute.", "dimension"),
		signalErrors: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: metricsNamespace, Name: "signal_errors_total",
			Help: "Failed reads of queue signals."}, workloadLabels),
		scales: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: metricsNamespace, Name: "scale_changes_total",
			Help: "Changes of the target's replicas made by the controller."}, workloadLabels),
		reconcileSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{Namespace: metricsNamespace, Name: "reconcile_duration_seconds",
			Help: "Duration of ClaudeCapacity reconciles.", Buckets: prometheus.ExponentialBuckets(0.001, 2, 14)}),
	}
	reg.MustRegister(m.demand, m.capReplicas, m.desired, m.backlog, m.inFlight, m.arrivals,
		m.allocation, m.signalErrors, m.scales, m.reconcileSeconds)
	return m
}

// defaultMetrics are registered once with controller-runtime's registry, which the
// manager serves.
var defaultMetrics = newControllerMetrics(ctrlmetrics.Registry)

func labels(cc *capacityv1alpha1.ClaudeCapacity) prometheus.Labels {
	return prometheus.Labels{labelNamespace: cc.Namespace, labelName: cc.Name}
}

func (m *controllerMetrics) observeDecision(cc *capacityv1alpha1.ClaudeCapacity, d capacity.Demand, dec capacity.Decision, a capacity.Allocation) {
	l := labels(cc)
	m.demand.With(l).Set(float64(d.Replicas))
	m.capReplicas.With(l).Set(float64(dec.CapReplicas))
	m.desired.With(l).Set(float64(dec.DesiredReplicas))
	m.backlog.With(l).Set(float64(d.Backlog))
	m.inFlight.With(l).Set(float64(d.InFlight))
	m.arrivals.With(l).Set(d.ArrivalsPerMinute)
	for _, dim := range dimension.All() {
		m.allocation.With(prometheus.Labels{labelNamespace: cc.Namespace, labelName: cc.Name, "dimension": dim.Name()}).
			Set(float64(a.Share[dim] + a.Headroom[dim]))
	}
}

func (m *controllerMetrics) signalError(cc *capacityv1alpha1.ClaudeCapacity) {
	m.signalErrors.With(labels(cc)).Inc()
}

func (m *controllerMetrics) scaled(cc *capacityv1alpha1.ClaudeCapacity) {
	m.scales.With(labels(cc)).Inc()
}

func (m *controllerMetrics) reconciled(start time.Time) {
	m.reconcileSeconds.Observe(time.Since(start).Seconds())
}

// forget drops a deleted ClaudeCapacity's series.
func (m *controllerMetrics) forget(namespace, name string) {
	l := prometheus.Labels{labelNamespace: namespace, labelName: name}
	for _, g := range []*prometheus.GaugeVec{m.demand, m.capReplicas, m.desired, m.backlog, m.inFlight, m.arrivals} {
		g.Delete(l)
	}
	m.allocation.DeletePartialMatch(l)
	m.signalErrors.Delete(l)
	m.scales.Delete(l)
}
