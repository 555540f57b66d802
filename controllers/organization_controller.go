package controllers

import (
	"context"
	"fmt"
	"reflect"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/events"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/predicate"

	"github.com/redis/go-redis/v9"

	capacityv1alpha1 "github.com/claudecap/claudecap/api/v1alpha1"
	"github.com/claudecap/claudecap/internal/specconv"
	"github.com/claudecap/claudecap/pkg/capacity"
	"github.com/claudecap/claudecap/pkg/ratelimit"
	"github.com/claudecap/claudecap/pkg/redispool"
)

// ClaudeOrganizationReconciler is the only writer of an organization's pools: for each model
// class with members it computes the split of the budget (the same one every member computes
// for itself) and writes the pool's limits, allocations and per-call reserves to the one Redis
// the organization names. No member can block, shrink or switch off a pool.
type ClaudeOrganizationReconciler struct {
	client.Client
	// APIReader reads the limiter's password Secret from the operator's namespace.
	APIReader client.Reader
	Recorder  events.EventRecorder
	Catalog   *capacity.Catalog
	// Redis shares Redis clients with the ClaudeCapacity controller.
	Redis *redispool.Pool
	// OperatorNamespace is where the limiter's password Secret lives.
	OperatorNamespace string

	now  func() time.Time
	mu   sync.Mutex
	orgs map[string]*orgMemory
}

// orgMemory is what the controller keeps about one organization between reconciles.
type orgMemory struct {
	redis   leasedRedis
	secrets secretCache
	// syncedAt and syncedGeneration are when the pools were last read and written, and the
	// spec generation then; pools holds each class's last view and written config.
	syncedAt         time.Time
	syncedGeneration int64
	syncedMembers    string
	pools            map[string]*orgPool
	lastError        string
}

type orgPool struct {
	view    *limiterView
	written bool
	// writes counts config writes, for tests and metrics.
	writes int
}

func (m *orgMemory) close() { m.redis.release() }

func (r *ClaudeOrganizationReconciler) memoryFor(name string) *orgMemory {
	r.mu.Lock()
	defer r.mu.Unlock()
	m, ok := r.orgs[name]
	if !ok {
		m = &orgMemory{pools: map[string]*orgPool{}}
		r.orgs[name] = m
	}
	return m
}

func (r *ClaudeOrganizationReconciler) forget(name string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if m, ok := r.orgs[name]; ok {
		m.close()
		delete(r.orgs, name)
	}
}

// poolWrites says how many times the pool of the class was written since the controller
// started (tests).
func (r *ClaudeOrganizationReconciler) poolWrites(org, class string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	if m, ok := r.orgs[org]; ok {
		if p, ok := m.pools[class]; ok {
			return p.writes
		}
	}
	return 0
}

// orgClass is one model class's members and their split.
type orgClass struct {
	class   capacity.ModelClass
	members []capacityv1alpha1.ClaudeCapacity
	// limits are the effective limits; ok false when the organization gives the class none.
	limits capacity.TierLimits
	ok     bool
	drift  []string
	shares *capacity.PoolAllocation
	config ratelimit.PoolConfig
	pool   *orgPool
}

// +kubebuilder:rbac:groups=capacity.claudecap.io,resources=claudeorganizations,verbs=get;list;watch
// +kubebuilder:rbac:groups=capacity.claudecap.io,resources=claudeorganizations/status,verbs=patch

// Reconcile splits each class's budget over the organization's members, writes the pools
// when they differ from what Redis holds (at most every limiterSyncInterval, at once after
// a spec or membership change), and reports it all in status.
func (r *ClaudeOrganizationReconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	org := &capacityv1alpha1.ClaudeOrganization{}
	if err := r.Get(ctx, req.NamespacedName, org); err != nil {
		if apierrors.IsNotFound(err) {
			r.forget(req.Name)
		}
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	before := org.DeepCopy()
	mem := r.memoryFor(org.Name)

	classes, refused, err := r.classes(ctx, org)
	if err != nil {
		return ctrl.Result{}, err
	}
	membership := membershipKey(classes)
	due := r.now().Sub(mem.syncedAt) >= limiterSyncInterval || mem.syncedGeneration != org.Generation || mem.syncedMembers != membership

	var rdb *redis.Client
	var redisErr error
	if due && len(classes) > 0 {
		rdb, redisErr = r.client(ctx, org, mem)
	}
	for _, c := range classes {
		c.pool = mem.pools[string(c.class)]
		if c.pool == nil {
			c.pool = &orgPool{}
			mem.pools[string(c.class)] = c.pool
		}
		if rdb != nil {
			if view, err := r.readPool(ctx, rdb, org, c.class); err != nil {
				redisErr = err
			} else {
				c.pool.view = view
			}
		}
		if err := r.split(org, c); err != nil {
			return ctrl.Result{}, err
		}
		if rdb != nil && redisErr == nil && c.ok {
			if err := r.writePool(ctx, rdb, org, c); err != nil {
				redisErr = err
			}
		}
	}
	if due && redisErr == nil {
		mem.syncedAt, mem.syncedGeneration, mem.syncedMembers = r.now(), org.Generation, membership
	}
	r.report(ctx, org, mem, classes, refused, redisErr, due)
	if !equality.Semantic.DeepEqual(before.Status, org.Status) {
		org.Status.ObservedGeneration = org.Generation
		if err := r.Status().Patch(ctx, org, client.MergeFrom(before)); err != nil {
			return ctrl.Result{}, client.IgnoreNotFound(fmt.Errorf("patching status of ClaudeOrganization %s: %w", org.Name, err))
		}
	}
	return ctrl.Result{RequeueAfter: limiterSyncInterval}, nil
}

// classes groups the organization's members by model class and counts the ClaudeCapacities
// that name it from a namespace it does not select.
func (r *ClaudeOrganizationReconciler) classes(ctx context.Context, org *capacityv1alpha1.ClaudeOrganization) ([]*orgClass, int32, error) {
	var list capacityv1alpha1.ClaudeCapacityList
	if err := r.List(ctx, &list, client.MatchingFields{orgIndexKey: org.Name}, client.UnsafeDisableDeepCopy); err != nil {
		return nil, 0, fmt.Errorf("listing the members of ClaudeOrganization %s: %w", org.Name, err)
	}
	members, refused, err := filterMembers(ctx, r.Client, org, list.Items)
	if err != nil {
		return nil, 0, err
	}
	byClass := map[capacity.ModelClass]*orgClass{}
	var out []*orgClass
	for i := range members {
		model, err := r.Catalog.Model(members[i].Spec.Model)
		if err != nil {
			continue
		}
		c := byClass[model.Class]
		if c == nil {
			c = &orgClass{class: model.Class}
			byClass[model.Class] = c
			out = append(out, c)
		}
		c.members = append(c.members, members[i])
	}
	slices.SortFunc(out, func(a, b *orgClass) int { return strings.Compare(string(a.class), string(b.class)) })
	return out, refused, nil
}

func membershipKey(classes []*orgClass) string {
	var b strings.Builder
	for _, c := range classes {
		b.WriteString(string(c.class))
		for i := range c.members {
			b.WriteString(" " + workloadName(&c.members[i]))
		}
		b.WriteString(";")
	}
	return b.String()
}

// client leases a connection to the organization's limiter Redis.
func (r *ClaudeOrganizationReconciler) client(ctx context.Context, org *capacityv1alpha1.ClaudeOrganization, mem *orgMemory) (*redis.Client, error) {
	red := org.Spec.Limiter.Redis
	secrets := labelledSecrets{reader: r.APIReader, namespace: r.OperatorNamespace, now: r.now(), cache: &mem.secrets}
	password, err := secrets.redisPassword(ctx, red.PasswordSecretRef)
	if err != nil {
		return nil, err
	}
	return mem.redis.client(r.Redis,
		redispool.Connection{Address: red.Address, Password: password, TLS: red.TLS, Database: int(red.Database)})
}

// readPool reads what the class's limiters observed: the API's last headers and every
// member's usage over the window.
func (r *ClaudeOrganizationReconciler) readPool(ctx context.Context, rdb *redis.Client, org *capacityv1alpha1.ClaudeOrganization,
	class capacity.ModelClass) (*limiterView, error) {
	pool := ratelimit.PoolKey{Organization: org.Name, Class: string(class)}
	ctx, cancel := context.WithTimeout(ctx, redispool.DefaultTimeout)
	defer cancel()
	view := &limiterView{readAt: r.now()}
	var err error
	if view.upstream, view.hasUp, err = ratelimit.ReadUpstream(ctx, rdb, pool); err != nil {
		return nil, err
	}
	if err := view.readPoolUsage(ctx, rdb, pool); err != nil {
		return nil, err
	}
	return view, nil
}

// split computes the class's effective limits, the members' shares and the pool config.
func (r *ClaudeOrganizationReconciler) split(org *capacityv1alpha1.ClaudeOrganization, c *orgClass) error {
	declared, err := r.Catalog.ResolveLimits(c.class, derefPlanLimits(orgPlanLimits(org, c.class)))
	if err != nil {
		return nil // c.ok stays false: the class has no limits (reported in Ready)
	}
	c.limits, c.drift = adoptUpstream(declared, c.pool.view.upstreamLimits(), org.Spec.Limits.FromUpstream)
	c.ok = true
	pool := capacity.Pool{
		Limits:          c.limits.Amounts(),
		HeadroomPercent: org.Spec.HeadroomPercentOrDefault(),
		ExternalUsage:   c.pool.view.externalUsage(r.now()),
	}
	claims := make([]capacity.Claim, 0, len(c.members))
	for i := range c.members {
		if claim, ok := memberClaim(r.Catalog, org, &c.members[i]); ok {
			claims = append(claims, claim)
		}
	}
	shares, err := capacity.FairShare(pool, claims)
	if err != nil {
		return fmt.Errorf("sharing the budget of %s/%s: %w", org.Name, c.class, err)
	}
	c.shares = &shares
	b := shares.Budget
	c.config = ratelimit.PoolConfig{
		Limits:      ratelimit.LimitsOf(b),
		Allocations: make(map[string]ratelimit.Limits, len(shares.Members)),
		Reserves:    map[string]ratelimit.Limits{},
		OutputRule:  outputRuleOf(org.Spec.Limits.OutputAccounting),
	}
	for i, a := range shares.Members {
		c.config.Allocations[a.Name] = allocationLimits(a)
		pc, _ := priorityOf(org, &c.members[i])
		if reserve, ok := reserveFor(org, pc, b); ok {
			c.config.Reserves[a.Name] = reserve
		}
	}
	return nil
}

func derefPlanLimits(l *capacity.PlanLimits) capacity.PlanLimits {
	if l == nil {
		return capacity.PlanLimits{}
	}
	return *l
}

func allocationLimits(a capacity.Allocation) ratelimit.Limits {
	return ratelimit.LimitsOf(a.Share.Add(a.Headroom))
}

// writePool writes the class's pool config unless Redis already holds exactly it, so a
// pool is written once per change (and again after Redis lost it).
func (r *ClaudeOrganizationReconciler) writePool(ctx context.Context, rdb *redis.Client, org *capacityv1alpha1.ClaudeOrganization, c *orgClass) error {
	pool := ratelimit.PoolKey{Organization: org.Name, Class: string(c.class)}
	ctx, cancel := context.WithTimeout(ctx, redispool.DefaultTimeout)
	defer cancel()
	have, err := ratelimit.ReadPoolConfig(ctx, rdb, pool)
	if err == nil {
		have.UpdatedAt, have.StartEmpty = time.Time{}, false
		if samePoolConfig(have, c.config) {
			c.pool.written = true
			return nil
		}
	}
	cfg := c.config
	// Written before by this process: a missing bucket now means Redis lost it.
	cfg.StartEmpty = c.pool.written
	if err := ratelimit.WritePoolConfig(ctx, rdb, pool, cfg); err != nil {
		return err
	}
	c.pool.written = true
	r.mu.Lock()
	c.pool.writes++
	r.mu.Unlock()
	return nil
}

// samePoolConfig compares two configs, treating empty and nil maps alike.
func samePoolConfig(a, b ratelimit.PoolConfig) bool {
	norm := func(m map[string]ratelimit.Limits) map[string]ratelimit.Limits {
		if len(m) == 0 {
			return nil
		}
		return m
	}
	a.Allocations, b.Allocations = norm(a.Allocations), norm(b.Allocations)
	a.Reserves, b.Reserves = norm(a.Reserves), norm(b.Reserves)
	if a.OutputRule == "" {
		a.OutputRule = ratelimit.OutputProduced
	}
	if b.OutputRule == "" {
		b.OutputRule = ratelimit.OutputProduced
	}
	return reflect.DeepEqual(a, b)
}

// report writes the status: per class the limits, what the API reports, usage and the
// members' shares; and the conditions.
func (r *ClaudeOrganizationReconciler) report(ctx context.Context, org *capacityv1alpha1.ClaudeOrganization, mem *orgMemory, classes []*orgClass,
	refused int32, redisErr error, synced bool) {
	st := &org.Status
	st.Refused = refused
	st.Members = 0
	st.Classes = nil
	var noLimits, drift []string
	var limited int64
	upstreamKnown := false
	for _, c := range classes {
		st.Members += int32(len(c.members)) //nolint:gosec // bounded by the number of objects
		cs := capacityv1alpha1.ClassStatus{Class: string(c.class), Limits: rateStatus(c.limits)}
		if !c.ok {
			noLimits = append(noLimits, string(c.class))
		}
		if v := c.pool.view; v != nil {
			cs.Usage = specconv.RateStatus(v.pool.Amounts())
			cs.RateLimitedRequests = v.pool.RateLimited
			limited += v.pool.RateLimited
			if v.hasUp {
				upstreamKnown = true
				t := metav1.NewTime(v.upstream.ObservedAt)
				cs.Upstream = &capacityv1alpha1.UpstreamStatus{Limit: rateStatus(v.upstreamLimits()), ObservedTime: &t}
				if rem := v.upstreamRemaining(r.now()); rem != nil {
					cs.Upstream.Remaining = *rem
				}
			}
		}
		for _, d := range c.drift {
			drift = append(drift, string(c.class)+": "+d)
		}
		if c.shares != nil {
			cs.Budget = specconv.RateStatus(c.shares.Budget)
			cs.Members = memberStatuses(org, c)
		}
		st.Classes = append(st.Classes, cs)
	}

	set := func(t string, status metav1.ConditionStatus, reason, msg string) {
		meta.SetStatusCondition(&st.Conditions, metav1.Condition{Type: t, Status: status, Reason: reason, Message: msg,
			ObservedGeneration: org.Generation})
	}
	addr := org.Spec.Limiter.Redis.Address
	switch {
	case redisErr != nil:
		set(capacityv1alpha1.ConditionPoolsConfigured, metav1.ConditionFalse, capacityv1alpha1.ReasonLimiterUnavailable,
			fmt.Sprintf("the limiter Redis %s: %v; the members' proxies keep the last limits written", addr, redisErr))
		if msg := redisErr.Error(); msg != mem.lastError {
			eventf(ctx, r.Recorder, org, nil, corev1.EventTypeWarning, capacityv1alpha1.ReasonLimiterUnavailable, "WritePools", "%v", redisErr)
			mem.lastError = msg
		}
	case len(classes) == 0:
		set(capacityv1alpha1.ConditionPoolsConfigured, metav1.ConditionTrue, capacityv1alpha1.ReasonNoMembers, "no ClaudeCapacity draws on the organization yet")
		mem.lastError = ""
	case synced:
		set(capacityv1alpha1.ConditionPoolsConfigured, metav1.ConditionTrue, capacityv1alpha1.ReasonPoolsConfigured,
			fmt.Sprintf("the limits and allocations of %d pools are in the limiter Redis %s", len(classes), addr))
		mem.lastError = ""
	}
	switch {
	case len(drift) > 0:
		msg := "the API reports " + strings.Join(drift, ", ")
		if org.Spec.Limits.FromUpstream {
			msg += "; adopted (limits.fromUpstream)"
		} else {
			msg += "; set limits.fromUpstream: true to adopt them, or correct spec.limits"
		}
		set(capacityv1alpha1.ConditionLimitsDrift, metav1.ConditionTrue, capacityv1alpha1.ReasonLimitsDiffer, msg)
	case upstreamKnown:
		set(capacityv1alpha1.ConditionLimitsDrift, metav1.ConditionFalse, capacityv1alpha1.ReasonLimitsMatch, "the API's reported limits match the declared ones")
	default:
		set(capacityv1alpha1.ConditionLimitsDrift, metav1.ConditionUnknown, capacityv1alpha1.ReasonNoUpstreamLimits,
			"no response of the API has reported its limits yet")
	}
	switch {
	case redisErr != nil:
		set(capacityv1alpha1.ConditionRateLimited, metav1.ConditionUnknown, capacityv1alpha1.ReasonLimiterUnavailable, "the limiter's records cannot be read")
	case limited > 0:
		set(capacityv1alpha1.ConditionRateLimited, metav1.ConditionTrue, capacityv1alpha1.ReasonUpstream429s,
			fmt.Sprintf("the API answered %d of the members' requests with 429 in the last %s", limited, usageWindow))
	default:
		set(capacityv1alpha1.ConditionRateLimited, metav1.ConditionFalse, capacityv1alpha1.ReasonNoRateLimits,
			fmt.Sprintf("no 429s from the API in the last %s", usageWindow))
	}
	switch {
	case redisErr != nil:
		set(capacityv1alpha1.ConditionReady, metav1.ConditionFalse, capacityv1alpha1.ReasonLimiterUnavailable,
			fmt.Sprintf("the limiter Redis %s cannot be reached: %v", addr, redisErr))
	case len(noLimits) > 0:
		set(capacityv1alpha1.ConditionReady, metav1.ConditionFalse, capacityv1alpha1.ReasonNoLimitsForClass,
			fmt.Sprintf("members use model classes without limits (%s): add them to limits.classes or set limits.tier", strings.Join(noLimits, ", ")))
	default:
		set(capacityv1alpha1.ConditionReady, metav1.ConditionTrue, capacityv1alpha1.ReasonReady,
			fmt.Sprintf("%d members in %d model classes; %d refused by the namespace selector", st.Members, len(classes), refused))
	}
}

// memberStatuses lists a class's members, highest priority first.
func memberStatuses(org *capacityv1alpha1.ClaudeOrganization, c *orgClass) []capacityv1alpha1.OrganizationMember {
	out := make([]capacityv1alpha1.OrganizationMember, 0, len(c.members))
	values := map[string]int32{}
	for i := range c.members {
		m := &c.members[i]
		a, ok := c.shares.Member(workloadName(m))
		if !ok {
			continue
		}
		pc, _ := priorityOf(org, m)
		values[m.Namespace+"/"+m.Name] = pc.Value
		om := capacityv1alpha1.OrganizationMember{
			Namespace: m.Namespace, Name: m.Name, PriorityClassName: pc.Name,
			DemandReplicas: m.Status.DemandReplicas, AllocatedReplicas: a.CapReplicas,
			Allocation: rateStatus(limitsOf(allocationLimits(a))),
		}
		if rs, ok := c.config.Reserves[a.Name]; ok {
			v := rateStatus(limitsOf(rs))
			om.Reserve = &v
		}
		out = append(out, om)
	}
	sort.SliceStable(out, func(i, j int) bool {
		return values[out[i].Namespace+"/"+out[i].Name] > values[out[j].Namespace+"/"+out[j].Name]
	})
	return out
}

func limitsOf(l ratelimit.Limits) capacity.TierLimits {
	return capacity.TierLimitsOf(l.Capacity())
}

// filterMembers keeps the ClaudeCapacities that draw on the organization: in a namespace it
// selects, not being deleted, and not held back as a second autoscaler of their target. It
// also counts those refused by the namespace selector.
func filterMembers(ctx context.Context, c client.Reader, org *capacityv1alpha1.ClaudeOrganization,
	items []capacityv1alpha1.ClaudeCapacity) ([]capacityv1alpha1.ClaudeCapacity, int32, error) {
	selected := map[string]bool{}
	var refused int32
	keep := make([]int, 0, len(items))
	for i := range items {
		m := &items[i]
		if !m.DeletionTimestamp.IsZero() {
			continue
		}
		ok, seen := selected[m.Namespace]
		if !seen {
			var err error
			if ok, err = namespaceSelected(ctx, c, org, m.Namespace); err != nil {
				return nil, 0, err
			}
			selected[m.Namespace] = ok
		}
		switch {
		case !ok:
			refused++
		case !secondAutoscaler(m):
			keep = append(keep, i)
		}
	}
	// Sort indexes, not whole objects, then copy each member once.
	slices.SortFunc(keep, func(a, b int) int {
		if c := strings.Compare(items[a].Namespace, items[b].Namespace); c != 0 {
			return c
		}
		return strings.Compare(items[a].Name, items[b].Name)
	})
	out := make([]capacityv1alpha1.ClaudeCapacity, len(keep))
	for j, i := range keep {
		out[j] = items[i]
	}
	return out, refused, nil
}

// SetupWithManager registers the controller: organizations, their members' changes that
// move the split, and namespace label changes that move the selection.
func (r *ClaudeOrganizationReconciler) SetupWithManager(mgr ctrl.Manager) error {
	if r.now == nil {
		r.now = time.Now
	}
	r.orgs = map[string]*orgMemory{}
	if r.APIReader == nil {
		r.APIReader = mgr.GetAPIReader()
	}
	if r.Redis == nil {
		r.Redis = redispool.New(redispool.Options{})
	}
	return ctrl.NewControllerManagedBy(mgr).
		For(&capacityv1alpha1.ClaudeOrganization{}, builder.WithPredicates(predicate.GenerationChangedPredicate{})).
		Watches(&capacityv1alpha1.ClaudeCapacity{}, handler.EnqueueRequestsFromMapFunc(organizationOf),
			builder.WithPredicates(memberClaimChanged())).
		Watches(&corev1.Namespace{}, handler.EnqueueRequestsFromMapFunc(r.allOrganizations),
			builder.WithPredicates(labelsChanged())).
		Named("claudeorganization").
		Complete(r)
}

func organizationOf(_ context.Context, obj client.Object) []ctrl.Request {
	cc := obj.(*capacityv1alpha1.ClaudeCapacity)
	if cc.Spec.OrganizationRef == nil {
		return nil
	}
	return []ctrl.Request{{NamespacedName: client.ObjectKey{Name: cc.Spec.OrganizationRef.Name}}}
}

func (r *ClaudeOrganizationReconciler) allOrganizations(ctx context.Context, _ client.Object) []ctrl.Request {
	var list capacityv1alpha1.ClaudeOrganizationList
	if err := r.List(ctx, &list); err != nil {
		ctrl.LoggerFrom(ctx).Error(err, "listing ClaudeOrganizations for a changed namespace")
		return nil
	}
	reqs := make([]ctrl.Request, 0, len(list.Items))
	for i := range list.Items {
		reqs = append(reqs, ctrl.Request{NamespacedName: client.ObjectKey{Name: list.Items[i].Name}})
	}
	return reqs
}

// memberClaimChanged lets through what moves a member's claim: creation, deletion, a spec
// change, a new demand, or becoming (or ceasing to be) a second autoscaler.
func memberClaimChanged() predicate.Predicate {
	return predicate.Funcs{
		UpdateFunc: func(e event.UpdateEvent) bool {
			o, n := e.ObjectOld.(*capacityv1alpha1.ClaudeCapacity), e.ObjectNew.(*capacityv1alpha1.ClaudeCapacity)
			return o.Generation != n.Generation || o.Status.DemandReplicas != n.Status.DemandReplicas ||
				secondAutoscaler(o) != secondAutoscaler(n) || !n.DeletionTimestamp.IsZero()
		},
	}
}

// labelsChanged lets through namespace label changes (and creations and deletions).
func labelsChanged() predicate.Predicate {
	return predicate.Funcs{
		UpdateFunc: func(e event.UpdateEvent) bool {
			return !equality.Semantic.DeepEqual(e.ObjectOld.GetLabels(), e.ObjectNew.GetLabels())
		},
	}
}
