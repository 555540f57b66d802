package controllers

import (
	"context"
	"fmt"

	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	capacityv1alpha1 "github.com/claudecap/claudecap/api/v1alpha1"
	"github.com/claudecap/claudecap/pkg/capacity"
	"github.com/claudecap/claudecap/pkg/redispool"
)

// Options configure the operator's controllers.
type Options struct {
	// Catalog maps models to classes, prices and tier limits. Default: the embedded one.
	Catalog *capacity.Catalog
	// OperatorNamespace is the operator's own namespace, where organizations' limiter
	// password Secrets live.
	OperatorNamespace string
	// MaxConcurrentReconciles of the ClaudeCapacity controller (default 4).
	MaxConcurrentReconciles int
	// Redis is the shared Redis client pool of queue sources and limiter connections
	// (default: a new one).
	Redis *redispool.Pool
}

// Controllers are the operator's reconcilers, as Setup registered them.
type Controllers struct {
	Capacity     *ClaudeCapacityReconciler
	Organization *ClaudeOrganizationReconciler
}

// Setup registers every controller of the operator and their indexes with the manager: the
// one wiring the manager binary, make dev, the benchmarks and the tests share.
func Setup(mgr ctrl.Manager, opts Options) (*Controllers, error) {
	if opts.Catalog == nil {
		opts.Catalog = capacity.DefaultCatalog()
	}
	if opts.Redis == nil {
		opts.Redis = redispool.New(redispool.Options{})
	}
	if err := mgr.GetFieldIndexer().IndexField(context.Background(), &capacityv1alpha1.ClaudeCapacity{}, orgIndexKey,
		func(obj client.Object) []string {
			if ref := obj.(*capacityv1alpha1.ClaudeCapacity).Spec.OrganizationRef; ref != nil {
				return []string{ref.Name}
			}
			return nil
		}); err != nil {
		return nil, fmt.Errorf("indexing ClaudeCapacities by organization: %w", err)
	}
	c := &Controllers{
		Capacity: &ClaudeCapacityReconciler{
			Client:                  mgr.GetClient(),
			Recorder:                mgr.GetEventRecorder("claudecap"),
			Catalog:                 opts.Catalog,
			Redis:                   opts.Redis,
			OperatorNamespace:       opts.OperatorNamespace,
			MaxConcurrentReconciles: opts.MaxConcurrentReconciles,
		},
		Organization: &ClaudeOrganizationReconciler{
			Client:            mgr.GetClient(),
			Recorder:          mgr.GetEventRecorder("claudecap"),
			Catalog:           opts.Catalog,
			Redis:             opts.Redis,
			OperatorNamespace: opts.OperatorNamespace,
		},
	}
	if err := c.Capacity.SetupWithManager(mgr); err != nil {
		return nil, fmt.Errorf("setting up the ClaudeCapacity controller: %w", err)
	}
	if err := c.Organization.SetupWithManager(mgr); err != nil {
		return nil, fmt.Errorf("setting up the ClaudeOrganization controller: %w", err)
	}
	return c, nil
}
