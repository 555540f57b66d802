// Package controllers holds the ClaudeCapacity reconciler. Reconcile reads the
// object, runs a fixed list of small steps over a shared scope, and patches the
// status once at the end; every decision lives in pkg/capacity.
package controllers

import (
	"context"
	"fmt"
	"slices"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/types"
	kerrors "k8s.io/apimachinery/pkg/util/errors"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/tools/events"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/predicate"

	capacityv1alpha1 "github.com/claudecap/claudecap/api/v1alpha1"
	"github.com/claudecap/claudecap/pkg/capacity"
	"github.com/claudecap/claudecap/pkg/redispool"
)

// targetIndexKey indexes ClaudeCapacities by "<Kind>/<name>" of their scale target, so a
// change of a Deployment or StatefulSet finds the ClaudeCapacities that manage it.
const targetIndexKey = "spec.scaleTargetRef.kindName"

// ClaudeCapacityReconciler reconciles ClaudeCapacity objects.
type ClaudeCapacityReconciler struct {
	client.Client
	// APIReader reads Secrets directly from the API server, so the manager needs no
	// cluster-wide watch on Secrets.
	APIReader client.Reader
	Recorder  events.EventRecorder
	// OperatorNamespace is the operator's own namespace: the only place an organization's
	// limiter password is read from.
	OperatorNamespace string
	// Catalog maps models to classes, prices and tier limits.
	Catalog *capacity.Catalog
	// Redis is the client pool that Redis queue sources and limiter connections lease
	// from: one client per server settings, shared by every ClaudeCapacity using it.
	Redis *redispool.Pool
	// MaxConcurrentReconciles is how many ClaudeCapacities are reconciled at once
	// (default 4); one object is never reconciled twice at the same time.
	MaxConcurrentReconciles int

	// Set by SetupWithManager.
	memory   *memory
	metrics  *controllerMetrics
	now      func() time.Time
	scalable *scalableKinds
}

// scope carries one reconcile's inputs and intermediate results from step to step.
type scope struct {
	cc *capacityv1alpha1.ClaudeCapacity
	// target is the scale target as seen through its /scale subresource; nil when missing.
	target *scaleTarget
	// org is the ClaudeOrganization the workload draws on (the cache's object: read only);
	// nil for a private pool or when the binding failed (OrganizationBound says why).
	org *capacityv1alpha1.ClaudeOrganization
	// model is the catalog entry of spec.model; zero when unknown.
	model capacity.Model
	// limits are the effective organization limits of the pool (tier preset + overrides).
	limits capacity.TierLimits

	// scalingBlocked is set when a pause or another autoscaler forbids changing replicas;
	// pausedReplicas when an annotation asks for a fixed count.
	scalingBlocked bool
	blockedBy      capacityv1alpha1.LimitReason // Paused unless set otherwise
	pausedReplicas *int32

	// sample is the queue as read this time (nil without a queue) and arrivals the
	// estimate after folding it in; signalsMissing when the read failed.
	sample         *capacity.QueueSample
	arrivals       capacity.ArrivalEstimate
	signalsMissing bool
	// draining is how long the queue has had a backlog without a break.
	draining time.Duration

	// limiter is what the shared limiters last observed (nil without a limiter); shares is
	// the split of the pool's budget decide computed.
	limiter *limiterView
	shares  *capacity.PoolAllocation

	// upstreamRefusals counts the 429s and 529s the API answered this workload since the
	// last poll (0 when unknown).
	upstreamRefusals int64

	// decision is what decide concluded; held when it chose to keep replicas as they are.
	decision *capacity.Decision
	held     bool
}

// step is one stage of a reconcile. Steps set conditions on the scope's object; the
// shortest requeue any step asks for wins, and an error stops the remaining steps.
type step func(ctx context.Context, s *scope) (ctrl.Result, error)

// +kubebuilder:rbac:groups=capacity.claudecap.io,resources=claudecapacities,verbs=get;list;watch
// +kubebuilder:rbac:groups=capacity.claudecap.io,resources=claudecapacities/status,verbs=patch
// +kubebuilder:rbac:groups=apps,resources=deployments;statefulsets,verbs=get;list;watch
// +kubebuilder:rbac:groups=*,resources=*/scale,verbs=get;update
// +kubebuilder:rbac:groups=events.k8s.io,resources=events,verbs=create;patch
// +kubebuilder:rbac:groups=autoscaling,resources=horizontalpodautoscalers,verbs=get;list;watch
// +kubebuilder:rbac:groups="",resources=secrets,verbs=get
// +kubebuilder:rbac:groups="",resources=namespaces,verbs=get;list;watch
// +kubebuilder:rbac:groups=capacity.claudecap.io,resources=claudeorganizations,verbs=get;list;watch

// Reconcile brings one ClaudeCapacity's status (and, with the scaling steps, its target's
// replicas) in line with its spec and the observed world.
func (r *ClaudeCapacityReconciler) Reconcile(ctx context.Context, req ctrl.Request) (result ctrl.Result, reterr error) {
	start := r.now()
	defer r.metrics.reconciled(start)
	cc := &capacityv1alpha1.ClaudeCapacity{}
	if err := r.Get(ctx, req.NamespacedName, cc); err != nil {
		if apierrors.IsNotFound(err) {
			r.forget(req.Namespace, req.Name)
		}
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	if !cc.DeletionTimestamp.IsZero() {
		// Nothing outside the object is owned: the target keeps its replicas.
		r.forget(cc.Namespace, cc.Name)
		return ctrl.Result{}, nil
	}
	w := r.memory.get(req.NamespacedName)
	if cc.ResourceVersion == w.overwritten {
		// The cache has not seen this controller's last status write yet (the scale it made
		// wakes the next reconcile, often first). Deciding on the version that write replaced
		// would decide again from stale history; look again once the cache has caught up.
		return ctrl.Result{RequeueAfter: cacheLagRetry}, nil
	}

	s := &scope{cc: cc}
	steps := []step{r.bindOrganization, r.readTarget, r.plan, r.checkScalingActive}
	next := pollInterval(cc)
	before := w.polled
	due, wait := r.pollDue(cc, w)
	if due {
		steps = append(steps, r.readSignals, r.readLimiter, r.decide, r.scale, r.publishLimiter)
	} else {
		next = wait
	}

	patcher := newStatusPatcher(cc)
	defer func() {
		summarizeReady(cc)
		if reterr == nil {
			cc.Status.ObservedGeneration = cc.Generation
		}
		read := cc.ResourceVersion
		wrote, err := patcher.patch(ctx, r.Client, cc, r.now())
		switch {
		case wrote:
			w.overwritten = read
		case apierrors.IsConflict(err):
			// The object changed since it was read (a spec edit, or a cache that lagged):
			// this poll's status is not written, so the next reconcile, soon, polls again.
			err, w.polled = nil, before
			result = shortest(result, ctrl.Result{RequeueAfter: cacheLagRetry})
		}
		reterr = kerrors.NewAggregate([]error{reterr, err})
		logReconcile(ctx, cc, r.now().Sub(start), reterr)
	}()

	result, err := r.reconcileSteps(ctx, s, steps...)
	if due && err != nil {
		// A poll that failed before it decided (a conflict, an unreadable target) is not a
		// poll: the retry must not wait a whole interval to decide.
		w.polled = before
	}
	return shortest(result, ctrl.Result{RequeueAfter: next}), err
}

// cacheLagRetry is how soon a reconcile that found its object older than its own last
// write looks again.
const cacheLagRetry = 200 * time.Millisecond

// pollInterval is how often live signals are read: spec.pollIntervalSeconds, default 2 s.
func pollInterval(cc *capacityv1alpha1.ClaudeCapacity) time.Duration {
	return cc.Spec.PollInterval()
}

// forget drops what the controller keeps in memory about a deleted ClaudeCapacity.
func (r *ClaudeCapacityReconciler) forget(namespace, name string) {
	r.memory.forget(types.NamespacedName{Namespace: namespace, Name: name})
	r.metrics.forget(namespace, name)
}

// reconcileSteps runs steps in order and merges their results.
func (r *ClaudeCapacityReconciler) reconcileSteps(ctx context.Context, s *scope, steps ...step) (ctrl.Result, error) {
	var result ctrl.Result
	for _, run := range steps {
		res, err := run(ctx, s)
		if err != nil {
			return ctrl.Result{}, err
		}
		result = shortest(result, res)
	}
	return result, nil
}

// shortest merges two results: the earliest requeue wins.
func shortest(a, b ctrl.Result) ctrl.Result {
	if b.RequeueAfter > 0 && (a.RequeueAfter == 0 || b.RequeueAfter < a.RequeueAfter) {
		return b
	}
	return a
}

// SetupWithManager registers the controller and its watches: the ClaudeCapacities
// themselves and the Deployments and StatefulSets they target.
func (r *ClaudeCapacityReconciler) SetupWithManager(mgr ctrl.Manager) error {
	r.memory = newMemory()
	if r.metrics == nil {
		r.metrics = defaultMetrics
	}
	if r.now == nil {
		r.now = time.Now
	}
	if r.MaxConcurrentReconciles == 0 {
		r.MaxConcurrentReconciles = 4
	}
	disc, err := discovery.NewDiscoveryClientForConfig(mgr.GetConfig())
	if err != nil {
		return fmt.Errorf("discovery client: %w", err)
	}
	r.scalable = newScalableKinds(disc, r.now)
	if r.APIReader == nil {
		r.APIReader = mgr.GetAPIReader()
	}
	if r.Redis == nil {
		r.Redis = redispool.New(redispool.Options{})
	}
	if err := mgr.GetFieldIndexer().IndexField(context.Background(), &capacityv1alpha1.ClaudeCapacity{}, poolIndexKey, r.poolIndex); err != nil {
		return err
	}
	if err := mgr.GetFieldIndexer().IndexField(context.Background(), &capacityv1alpha1.ClaudeCapacity{}, targetIndexKey,
		func(obj client.Object) []string {
			ref := obj.(*capacityv1alpha1.ClaudeCapacity).Spec.ScaleTargetRef
			return []string{targetIndexValue(ref.Kind, ref.Name)}
		}); err != nil {
		return err
	}
	return ctrl.NewControllerManagedBy(mgr).
		For(&capacityv1alpha1.ClaudeCapacity{}, builder.WithPredicates(predicate.Or(
			predicate.GenerationChangedPredicate{}, predicate.AnnotationChangedPredicate{}))).
		Watches(&appsv1.Deployment{}, handler.EnqueueRequestsFromMapFunc(r.claudeCapacitiesFor("Deployment")),
			builder.WithPredicates(replicasOrLifecycleChanged())).
		Watches(&appsv1.StatefulSet{}, handler.EnqueueRequestsFromMapFunc(r.claudeCapacitiesFor("StatefulSet")),
			builder.WithPredicates(replicasOrLifecycleChanged())).
		Watches(&capacityv1alpha1.ClaudeOrganization{}, handler.EnqueueRequestsFromMapFunc(r.membersOf),
			builder.WithPredicates(predicate.GenerationChangedPredicate{})).
		Watches(&corev1.Namespace{}, handler.EnqueueRequestsFromMapFunc(r.boundIn),
			builder.WithPredicates(labelsChanged())).
		WithOptions(controller.Options{MaxConcurrentReconciles: max(r.MaxConcurrentReconciles, 1)}).
		Named("claudecapacity").
		Complete(r)
}

func targetIndexValue(kind, name string) string { return kind + "/" + name }

// membersOf maps a changed ClaudeOrganization to every ClaudeCapacity that names it, so a
// new limit or selector reaches them at once.
func (r *ClaudeCapacityReconciler) membersOf(ctx context.Context, obj client.Object) []ctrl.Request {
	var list capacityv1alpha1.ClaudeCapacityList
	if err := r.List(ctx, &list, client.MatchingFields{orgIndexKey: obj.GetName()}); err != nil {
		ctrl.LoggerFrom(ctx).Error(err, "listing the members of a changed ClaudeOrganization", "organization", obj.GetName())
		return nil
	}
	return requestsFor(list.Items)
}

// boundIn maps a namespace whose labels changed to its ClaudeCapacities that name an
// organization: the selector may now take them in or leave them out.
func (r *ClaudeCapacityReconciler) boundIn(ctx context.Context, obj client.Object) []ctrl.Request {
	var list capacityv1alpha1.ClaudeCapacityList
	if err := r.List(ctx, &list, client.InNamespace(obj.GetName())); err != nil {
		ctrl.LoggerFrom(ctx).Error(err, "listing ClaudeCapacities of a relabelled namespace", "namespace", obj.GetName())
		return nil
	}
	list.Items = slices.DeleteFunc(list.Items, func(cc capacityv1alpha1.ClaudeCapacity) bool { return cc.Spec.OrganizationRef == nil })
	return requestsFor(list.Items)
}

func requestsFor(items []capacityv1alpha1.ClaudeCapacity) []ctrl.Request {
	reqs := make([]ctrl.Request, 0, len(items))
	for i := range items {
		reqs = append(reqs, ctrl.Request{NamespacedName: client.ObjectKeyFromObject(&items[i])})
	}
	return reqs
}

// claudeCapacitiesFor maps a changed workload of the given kind to the ClaudeCapacities
// in its namespace that target it.
func (r *ClaudeCapacityReconciler) claudeCapacitiesFor(kind string) handler.MapFunc {
	return func(ctx context.Context, obj client.Object) []ctrl.Request {
		var list capacityv1alpha1.ClaudeCapacityList
		if err := r.List(ctx, &list, client.InNamespace(obj.GetNamespace()),
			client.MatchingFields{targetIndexKey: targetIndexValue(kind, obj.GetName())}); err != nil {
			ctrl.LoggerFrom(ctx).Error(err, "listing ClaudeCapacities for a changed target", "kind", kind, "name", obj.GetName())
			return nil
		}
		reqs := make([]ctrl.Request, 0, len(list.Items))
		for i := range list.Items {
			reqs = append(reqs, ctrl.Request{NamespacedName: client.ObjectKeyFromObject(&list.Items[i])})
		}
		return reqs
	}
}

// replicasOrLifecycleChanged lets through creations, deletions and updates that change
// the replica count, not the status churn of every rollout.
func replicasOrLifecycleChanged() predicate.Predicate {
	return predicate.Funcs{
		UpdateFunc: func(e event.UpdateEvent) bool {
			return replicasOf(e.ObjectOld) != replicasOf(e.ObjectNew) ||
				e.ObjectOld.GetGeneration() != e.ObjectNew.GetGeneration()
		},
	}
}
