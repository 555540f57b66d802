package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Condition types a ClaudeOrganization reports besides Ready, LimitsDrift and RateLimited
// (shared with ClaudeCapacity).
const (
	// ConditionPoolsConfigured is True when every class with members has its limits and
	// allocations written to the organization's limiter Redis.
	ConditionPoolsConfigured = "PoolsConfigured"
)

// Condition types a ClaudeCapacity reports about its organization.
const (
	// ConditionOrganizationBound is True when spec.organizationRef names an existing
	// ClaudeOrganization that selects the workload's namespace, or when the workload is a
	// private pool.
	ConditionOrganizationBound = "OrganizationBound"
)

// ClassLimits are the organization's limits for one model class. Values left out come from
// the organization's tier.
type ClassLimits struct {
	// class is the model class, as the catalog names it (for example sonnet-4, opus-4,
	// haiku-4.5; pkg/capacity/catalog.yaml maps each model to its class).
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=63
	// +kubebuilder:validation:Pattern=`^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$`
	Class string `json:"class"`

	// requestsPerMinute is the request limit of the class.
	// +optional
	// +kubebuilder:validation:Minimum=1
	RequestsPerMinute *int64 `json:"requestsPerMinute,omitempty"`

	// inputTokensPerMinute is the input-token limit of the class.
	// +optional
	// +kubebuilder:validation:Minimum=1
	InputTokensPerMinute *int64 `json:"inputTokensPerMinute,omitempty"`

	// outputTokensPerMinute is the output-token limit of the class.
	// +optional
	// +kubebuilder:validation:Minimum=1
	OutputTokensPerMinute *int64 `json:"outputTokensPerMinute,omitempty"`
}

// OrganizationLimits are the organization's limits: a tier preset for every class, with
// explicit values per class overriding it.
// +kubebuilder:validation:XValidation:rule="has(self.tier) || (has(self.classes) && self.classes.all(c, has(c.requestsPerMinute) && has(c.inputTokensPerMinute) && has(c.outputTokensPerMinute)))",message="limits need a tier, or classes that each give all three of requestsPerMinute, inputTokensPerMinute and outputTokensPerMinute"
type OrganizationLimits struct {
	// tier is the usage tier whose published limits apply to every model class.
	// +optional
	Tier Tier `json:"tier,omitempty"`

	// classes override the tier's limits per model class. Without a tier, only the classes
	// listed here have limits; members of other classes are refused.
	// +optional
	// +listType=map
	// +listMapKey=class
	// +kubebuilder:validation:MaxItems=32
	Classes []ClassLimits `json:"classes,omitempty"`

	// outputAccounting is how the API charges output tokens: Produced (the current rule) or
	// Reserved (max_tokens at the start, the 2025 rule). Default Produced.
	// +optional
	// +kubebuilder:default=Produced
	OutputAccounting OutputAccounting `json:"outputAccounting,omitempty"`

	// fromUpstream adopts, per class and dimension, the limits the API reports in its
	// anthropic-ratelimit-*-limit headers in place of the declared ones. Default false: a
	// difference only raises LimitsDrift.
	// +optional
	FromUpstream bool `json:"fromUpstream,omitempty"`
}

// OrganizationRedis is the organization's limiter Redis. Its password comes only from a
// Secret in the operator's own namespace, which tenants cannot name or read.
type OrganizationRedis struct {
	// address is host:port of the Redis server.
	// +required
	// +kubebuilder:validation:MinLength=3
	// +kubebuilder:validation:MaxLength=512
	Address string `json:"address"`

	// passwordSecretRef names a key of a Secret in the operator's namespace.
	// +optional
	PasswordSecretRef *SecretKeyRef `json:"passwordSecretRef,omitempty"`

	// tls turns on TLS to Redis. Default false.
	// +optional
	TLS bool `json:"tls,omitempty"`

	// database is the Redis database index. Default 0.
	// +optional
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=255
	Database int32 `json:"database,omitempty"`
}

// OrganizationLimiter says where the organization's pools live.
type OrganizationLimiter struct {
	// redis is the one server that holds every pool of the organization; the
	// organization's controller is the only writer of their limits and allocations.
	// +required
	Redis OrganizationRedis `json:"redis"`
}

// PriorityClass is a rank of workloads inside the organization's budget.
type PriorityClass struct {
	// name of the class, chosen by a ClaudeCapacity's priorityClassName.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=63
	// +kubebuilder:validation:Pattern=`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`
	Name string `json:"name"`

	// value ranks the class: higher values are served first.
	// +required
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=1000000
	Value int32 `json:"value"`

	// reservePercent is the share of each limit that calls of lower classes leave in the
	// limiter's bucket, on every call, for this class and higher ones: a batch burst cannot
	// take the room an interactive call arriving a second later needs. 0 to 90. Default 0.
	// +optional
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=90
	ReservePercent int32 `json:"reservePercent,omitempty"`
}

// ClaudeOrganizationSpec declares an organization's budget, who may draw on it and how it
// is shared.
// +kubebuilder:validation:XValidation:rule="!has(self.defaultPriorityClassName) || (has(self.priorityClasses) && self.priorityClasses.exists(p, p.name == self.defaultPriorityClassName))",message="defaultPriorityClassName must name one of priorityClasses"
type ClaudeOrganizationSpec struct {
	// limits are the organization's rate limits per model class.
	// +required
	Limits OrganizationLimits `json:"limits"`

	// headroomPercent is the share of each limit the members may plan to use together, 1 to
	// 100. Default 90.
	// +optional
	// +kubebuilder:default=90
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=100
	HeadroomPercent int32 `json:"headroomPercent,omitempty"`

	// limiter is the Redis that holds the organization's pools.
	// +required
	Limiter OrganizationLimiter `json:"limiter"`

	// namespaceSelector says which namespaces' ClaudeCapacities may draw on the budget.
	// Absent selects none; {} selects every namespace.
	// +optional
	NamespaceSelector *metav1.LabelSelector `json:"namespaceSelector,omitempty"`

	// priorityClasses rank the members. Without them every member is equal.
	// +optional
	// +listType=map
	// +listMapKey=name
	// +kubebuilder:validation:MaxItems=16
	PriorityClasses []PriorityClass `json:"priorityClasses,omitempty"`

	// defaultPriorityClassName is the class of members that choose none. Default: the
	// lowest class.
	// +optional
	DefaultPriorityClassName string `json:"defaultPriorityClassName,omitempty"`
}

// OrganizationMember is one member's part of a class's budget.
type OrganizationMember struct {
	// namespace and name of the ClaudeCapacity.
	// +required
	Namespace string `json:"namespace"`
	// +required
	Name string `json:"name"`

	// priorityClassName is the class the member is served in.
	// +optional
	PriorityClassName string `json:"priorityClassName,omitempty"`

	// demandReplicas is what the member's last reconcile asked for.
	// +optional
	DemandReplicas int32 `json:"demandReplicas"`

	// allocatedReplicas is how many replicas the member's share of the budget carries.
	// +optional
	AllocatedReplicas int32 `json:"allocatedReplicas"`

	// allocation is the member's share of the budget per minute, unclaimed room included.
	// +optional
	Allocation RateStatus `json:"allocation"`

	// reserve is what the member's calls leave in the limiter's bucket for higher classes.
	// +optional
	Reserve *RateStatus `json:"reserve,omitempty"`
}

// UpstreamStatus is what the API's last anthropic-ratelimit-* headers reported.
type UpstreamStatus struct {
	// limit per minute, as reported.
	// +optional
	Limit RateStatus `json:"limit"`

	// remaining of the limit, as reported (tokens rounded to thousands).
	// +optional
	Remaining RateStatus `json:"remaining"`

	// observedTime is when a response last reported them.
	// +optional
	ObservedTime *metav1.Time `json:"observedTime,omitempty"`
}

// ClassStatus is one model class's pool.
type ClassStatus struct {
	// class is the model class.
	// +required
	Class string `json:"class"`

	// limits are the effective limits: declared, or adopted from the API with fromUpstream.
	// +optional
	Limits RateStatus `json:"limits"`

	// budget is what the members may use together per minute: limits times headroom, less
	// what callers outside the pool use.
	// +optional
	Budget RateStatus `json:"budget"`

	// upstream is what the API reports; absent until a proxy has published a response.
	// +optional
	Upstream *UpstreamStatus `json:"upstream,omitempty"`

	// usage is what the members used over the last minute, as their limiters recorded it.
	// +optional
	Usage RateStatus `json:"usage"`

	// rateLimitedRequests is the members' upstream 429s in the last minute.
	// +optional
	RateLimitedRequests int64 `json:"rateLimitedRequests,omitempty"`

	// members are the class's members and their shares, highest priority first.
	// +optional
	// +listType=atomic
	Members []OrganizationMember `json:"members,omitempty"`
}

// ClaudeOrganizationStatus is what the organization's controller observed and wrote.
type ClaudeOrganizationStatus struct {
	// observedGeneration is the spec generation the status describes.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`

	// members is the number of ClaudeCapacities drawing on the budget.
	// +optional
	Members int32 `json:"members"`

	// refused is the number of ClaudeCapacities that name the organization from a namespace
	// it does not select.
	// +optional
	Refused int32 `json:"refused,omitempty"`

	// classes holds one entry per model class with members.
	// +optional
	// +listType=map
	// +listMapKey=class
	Classes []ClassStatus `json:"classes,omitempty"`

	// conditions: Ready, PoolsConfigured, LimitsDrift, RateLimited.
	// +optional
	// +listType=map
	// +listMapKey=type
	Conditions []metav1.Condition `json:"conditions,omitempty"`
}

// ClaudeOrganization is an Anthropic organization's (or API key's) rate-limit budget, owned
// by the cluster's administrators: its limits per model class, the Redis its limiters share,
// which namespaces may draw on it and how members are ranked.
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:scope=Cluster,shortName=corg,categories=claudecap
// +kubebuilder:validation:XValidation:rule="self.metadata.name.matches('^[a-z0-9]([-a-z0-9]*[a-z0-9])?$') && size(self.metadata.name) <= 63",message="a ClaudeOrganization's name must be a DNS label (at most 63 characters of a-z, 0-9 and -)"
// +kubebuilder:printcolumn:name="Tier",type=string,JSONPath=`.spec.limits.tier`
// +kubebuilder:printcolumn:name="Headroom",type=integer,JSONPath=`.spec.headroomPercent`
// +kubebuilder:printcolumn:name="Members",type=integer,JSONPath=`.status.members`
// +kubebuilder:printcolumn:name="Refused",type=integer,JSONPath=`.status.refused`,priority=1
// +kubebuilder:printcolumn:name="Drift",type=string,JSONPath=`.status.conditions[?(@.type=="LimitsDrift")].status`,priority=1
// +kubebuilder:printcolumn:name="RateLimited",type=string,JSONPath=`.status.conditions[?(@.type=="RateLimited")].status`
// +kubebuilder:printcolumn:name="Ready",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].status`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type ClaudeOrganization struct {
	metav1.TypeMeta `json:",inline"`
	// +optional
	metav1.ObjectMeta `json:"metadata,omitzero"`

	// spec declares the budget.
	// +required
	Spec ClaudeOrganizationSpec `json:"spec"`

	// status is what the controller observed.
	// +optional
	Status ClaudeOrganizationStatus `json:"status,omitzero"`
}

// ClaudeOrganizationList contains a list of ClaudeOrganization.
// +kubebuilder:object:root=true
type ClaudeOrganizationList struct {
	metav1.TypeMeta `json:",inline"`
	// +optional
	metav1.ListMeta `json:"metadata,omitzero"`
	Items           []ClaudeOrganization `json:"items"`
}
