package v1alpha1

// Condition reasons and event reasons, in one place: the controllers set them, tests and
// users match on them. A condition's reason is CamelCase and says why, its message says what
// to do. ScalingLimited's reason is the status.limitedBy value (LimitReason) when a limit or
// the behavior decides, else one of the reasons below.

// Reasons of Ready (besides the first failing input condition's reason).
const (
	ReasonReady = "Ready"
)

// Reasons of OrganizationBound.
const (
	// ReasonPrivatePool: the workload has limits of its own and shares them with nobody.
	ReasonPrivatePool = "PrivatePool"
	// ReasonBound: the organization exists and selects the workload's namespace.
	ReasonBound = "Bound"
	// ReasonOrganizationNotFound: spec.organizationRef names no ClaudeOrganization.
	ReasonOrganizationNotFound = "OrganizationNotFound"
	// ReasonNamespaceNotSelected: the organization's namespaceSelector leaves the namespace out.
	ReasonNamespaceNotSelected = "NamespaceNotSelected"
	// ReasonUnknownPriorityClass: bound, but the priority class named is not declared.
	ReasonUnknownPriorityClass = "UnknownPriorityClass"
)

// Reasons of TargetFound.
const (
	ReasonTargetFound       = "TargetFound"
	ReasonTargetNotFound    = "TargetNotFound"
	ReasonTargetKindUnknown = "TargetKindUnknown"
	ReasonTargetNotScalable = "TargetNotScalable"
	ReasonTargetUnreadable  = "TargetUnreadable"
)

// Reasons of PlanFits (and of a ClaudeOrganization's Ready, for NoLimitsForClass).
const (
	ReasonPlanFits          = "PlanFits"
	ReasonPlanExceedsLimits = "PlanExceedsLimits"
	ReasonUnknownModel      = "UnknownModel"
	ReasonInvalidPlan       = "InvalidPlan"
	// ReasonNoLimitsForClass: the organization declares no limits for the model's class.
	ReasonNoLimitsForClass = "NoLimitsForClass"
)

// Reasons of ScalingActive.
const (
	ReasonScalingActive       = "ScalingActive"
	ReasonPaused              = "Paused"
	ReasonAmbiguousAutoscaler = "AmbiguousAutoscaler"
	ReasonTargetMissing       = "TargetMissing"
	ReasonInvalidAnnotation   = "InvalidAnnotation"
)

// Reasons of ScalingLimited besides the LimitReason values.
const (
	ReasonDemandDecides = "DemandDecides"
	ReasonHeld          = "Held"
)

// Reasons of SignalsAvailable.
const (
	ReasonQueueRead          = "QueueRead"
	ReasonDeclaredTraffic    = "DeclaredTraffic"
	ReasonSignalsUnavailable = "SignalsUnavailable"
	ReasonSecretUnreadable   = "SecretUnreadable"
)

// Reasons of RateLimited, LimitsDrift and a ClaudeOrganization's PoolsConfigured.
const (
	ReasonNoRateLimits       = "NoRateLimits"
	ReasonUpstream429s       = "Upstream429s"
	ReasonLimiterUnavailable = "LimiterUnavailable"
	ReasonNoLimiter          = "NoLimiter"
	ReasonNoUpstreamLimits   = "NoUpstreamLimits"
	ReasonLimitsMatch        = "LimitsMatch"
	ReasonLimitsDiffer       = "LimitsDiffer"
	ReasonPoolsConfigured    = "PoolsConfigured"
	ReasonNoMembers          = "NoMembers"
)

// Event reasons.
const (
	EventScaled           = "Scaled"
	EventSignalsLost      = "SignalsLost"
	EventSignalsRecovered = "SignalsRecovered"
)
