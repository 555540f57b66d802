package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Tier names an Anthropic usage tier whose published limits apply.
// +kubebuilder:validation:Enum=tier-1;tier-2;tier-3;tier-4
type Tier string

// The usage tiers published by Anthropic, smallest first.
const (
	Tier1 Tier = "tier-1"
	Tier2 Tier = "tier-2"
	Tier3 Tier = "tier-3"
	Tier4 Tier = "tier-4"
)

// LimitReason names what bounds this poll's desired replica count.
// +kubebuilder:validation:Enum=Queue;Requests;InputTokens;OutputTokens;PoolShare;MaxReplicas;MinReplicas;Paused;Held;ScaleUpPolicy;ScaleDownPolicy;ScaleUpStabilization;ScaleDownStabilization;WorkInFlight
type LimitReason string

// The terms that can bound desired replicas. Queue means demand itself decided;
// Requests, InputTokens, OutputTokens and PoolShare mean the budget cap did;
// MaxReplicas and MinReplicas the spec's bounds; the ScaleUp*/ScaleDown* values
// and WorkInFlight mean the behavior held this poll's step short of the
// recommendation (the ScalingLimited condition names both); Paused and Held mean
// the controller left replicas alone.
const (
	LimitedByQueue        LimitReason = "Queue"
	LimitedByRequests     LimitReason = "Requests"
	LimitedByInputTokens  LimitReason = "InputTokens"
	LimitedByOutputTokens LimitReason = "OutputTokens"
	LimitedByPoolShare    LimitReason = "PoolShare"
	LimitedByMaxReplicas  LimitReason = "MaxReplicas"
	LimitedByMinReplicas  LimitReason = "MinReplicas"
	LimitedByPaused       LimitReason = "Paused"
	LimitedByHeld         LimitReason = "Held"

	LimitedByScaleUpPolicy          LimitReason = "ScaleUpPolicy"
	LimitedByScaleDownPolicy        LimitReason = "ScaleDownPolicy"
	LimitedByScaleUpStabilization   LimitReason = "ScaleUpStabilization"
	LimitedByScaleDownStabilization LimitReason = "ScaleDownStabilization"
	LimitedByWorkInFlight           LimitReason = "WorkInFlight"
)

// ScalingPolicyType says how a scaling policy's value is read.
// +kubebuilder:validation:Enum=Pods;Percent
type ScalingPolicyType string

// The kinds of step a scaling policy allows, as in the HorizontalPodAutoscaler.
const (
	PodsScalingPolicy    ScalingPolicyType = "Pods"
	PercentScalingPolicy ScalingPolicyType = "Percent"
)

// SelectPolicy chooses among several scaling policies.
// +kubebuilder:validation:Enum=Max;Min;Disabled
type SelectPolicy string

// How several policies combine, as in the HorizontalPodAutoscaler.
const (
	SelectMax      SelectPolicy = "Max"
	SelectMin      SelectPolicy = "Min"
	SelectDisabled SelectPolicy = "Disabled"
)

// Condition types a ClaudeCapacity reports.
const (
	// ConditionReady summarizes the others: the target exists, the plan fits and signals are live.
	ConditionReady = "Ready"
	// ConditionTargetFound is False when the scale target or its /scale subresource is missing.
	ConditionTargetFound = "TargetFound"
	// ConditionPlanFits is False when the declared traffic does not fit the declared limits.
	ConditionPlanFits = "PlanFits"
	// ConditionScalingActive is True when the controller is allowed to change replicas.
	ConditionScalingActive = "ScalingActive"
	// ConditionScalingLimited is True when a limit, not demand, decides the replicas.
	ConditionScalingLimited = "ScalingLimited"
	// ConditionSignalsAvailable is False when queue or limiter signals cannot be read.
	ConditionSignalsAvailable = "SignalsAvailable"
	// ConditionRateLimited is True when upstream 429s were seen in the last window.
	ConditionRateLimited = "RateLimited"
	// ConditionLimitsDrift is True when the API's own rate-limit headers report limits that
	// differ from the declared ones (tier tables change; the headers are the truth).
	ConditionLimitsDrift = "LimitsDrift"
)

// Annotations that pause the controller, spelled as KEDA users expect.
const (
	// AnnotationPaused set to "true" stops all scaling of the target.
	AnnotationPaused = "capacity.claudecap.io/paused"
	// AnnotationPausedReplicas scales the target to this count once and then stops scaling.
	AnnotationPausedReplicas = "capacity.claudecap.io/paused-replicas"
)

// LabelRedisCredentials marks a Secret whose keys may be sent to a Redis server as its
// password: the controller reads a passwordSecretRef only from a Secret labelled with it
// set to "true". Without the mark, anyone allowed to create a ClaudeCapacity could point
// the controller at any Secret of the namespace and a Redis address of their own, and
// receive the Secret's value as AUTH.
const LabelRedisCredentials = "capacity.claudecap.io/redis-credentials"

// ScaleTargetRef points at the workload whose replicas are managed.
type ScaleTargetRef struct {
	// apiVersion of the target, for example apps/v1.
	// +required
	// +kubebuilder:validation:MinLength=1
	APIVersion string `json:"apiVersion"`

	// kind of the target, for example Deployment or StatefulSet. Any kind with a /scale
	// subresource works.
	// +required
	// +kubebuilder:validation:MinLength=1
	Kind string `json:"kind"`

	// name of the target in the ClaudeCapacity's namespace.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	Name string `json:"name"`
}

// Limits are an organization's limits for the model class: a private pool's in a
// ClaudeCapacity, an organization's per class in a ClaudeOrganization.
// +kubebuilder:validation:XValidation:rule="has(self.tier) || (has(self.requestsPerMinute) && has(self.inputTokensPerMinute) && has(self.outputTokensPerMinute))",message="limits need a tier, or all three of requestsPerMinute, inputTokensPerMinute and outputTokensPerMinute"
type Limits struct {
	// tier is the usage tier whose published limits apply; explicit values below override it
	// per dimension.
	// +optional
	Tier Tier `json:"tier,omitempty"`

	// requestsPerMinute is the organization's request limit for the model class.
	// +optional
	// +kubebuilder:validation:Minimum=1
	RequestsPerMinute *int64 `json:"requestsPerMinute,omitempty"`

	// inputTokensPerMinute is the input-token limit, counted as Anthropic counts it
	// (cache reads excluded for current models).
	// +optional
	// +kubebuilder:validation:Minimum=1
	InputTokensPerMinute *int64 `json:"inputTokensPerMinute,omitempty"`

	// outputTokensPerMinute is the output-token limit.
	// +optional
	// +kubebuilder:validation:Minimum=1
	OutputTokensPerMinute *int64 `json:"outputTokensPerMinute,omitempty"`

	// outputAccounting is how the API charges output tokens against the limit, which the
	// limiters mirror: Produced (as they are generated, max_tokens does not count; the
	// API's rule since 2026, and safe under the older rule too) or Reserved (max_tokens
	// at the start of a call, the unused part given back at its end; the 2025 rule).
	// +optional
	// +kubebuilder:default=Produced
	OutputAccounting OutputAccounting `json:"outputAccounting,omitempty"`

	// fromUpstream adopts the limits the API reports in its anthropic-ratelimit-*-limit
	// response headers (published by the proxies) in place of the declared ones, dimension by
	// dimension, once they are known. The declared limits still drive the plan. Default
	// false: a difference only raises LimitsDrift.
	// +optional
	FromUpstream bool `json:"fromUpstream,omitempty"`
}

// OutputAccounting is the API's rule for charging output tokens.
// +kubebuilder:validation:Enum=Produced;Reserved
type OutputAccounting string

const (
	// OutputAccountingProduced charges output as it is generated.
	OutputAccountingProduced OutputAccounting = "Produced"
	// OutputAccountingReserved takes max_tokens at the start and corrects at the end.
	OutputAccountingReserved OutputAccounting = "Reserved"
)

// Traffic is the declared expectation: it drives the plan, and the scaling decision until
// live signals replace it.
type Traffic struct {
	// requestsPerMinute expected on average.
	// +required
	// +kubebuilder:validation:Minimum=1
	RequestsPerMinute int64 `json:"requestsPerMinute"`

	// avgInputTokens per request, cached tokens included.
	// +required
	// +kubebuilder:validation:Minimum=1
	AvgInputTokens int64 `json:"avgInputTokens"`

	// avgOutputTokens per request.
	// +required
	// +kubebuilder:validation:Minimum=1
	AvgOutputTokens int64 `json:"avgOutputTokens"`

	// cacheHitRatio is the share of input tokens read from the prompt cache, 0 to 1. Default 0.
	// +optional
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=1
	CacheHitRatio *float64 `json:"cacheHitRatio,omitempty"`

	// batchShare is the share of requests sent through Message Batches, 0 to 1. Default 0.
	// +optional
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=1
	BatchShare *float64 `json:"batchShare,omitempty"`
}

// Worker describes one replica of the target.
type Worker struct {
	// requestsPerMinutePerReplica is what one replica processes when busy. Replaced by the
	// observed value once the limiter has enough samples.
	// +required
	// +kubebuilder:validation:Minimum=1
	RequestsPerMinutePerReplica int64 `json:"requestsPerMinutePerReplica"`
}

// SecretKeyRef names one key of a Secret in the ClaudeCapacity's namespace.
type SecretKeyRef struct {
	// name of the Secret.
	// +required
	// +kubebuilder:validation:MinLength=1
	Name string `json:"name"`

	// key within the Secret.
	// +required
	// +kubebuilder:validation:MinLength=1
	Key string `json:"key"`
}

// RedisConnection says how to reach a Redis server.
type RedisConnection struct {
	// address is host:port of the Redis server.
	// +required
	// +kubebuilder:validation:MinLength=3
	// +kubebuilder:validation:MaxLength=512
	Address string `json:"address"`

	// passwordSecretRef names the Secret key that holds the Redis password. The Secret must be
	// labelled capacity.claudecap.io/redis-credentials=true: others are never read.
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

// SecretRef names a Secret in the ClaudeCapacity's namespace.
type SecretRef struct {
	// name of the Secret.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	Name string `json:"name"`
}

// Queue says where the backlog lives: exactly one source, redis or sqs, and how quickly a
// backlog should be worked off.
// +kubebuilder:validation:XValidation:rule="[has(self.redis), has(self.sqs)].exists_one(x, x)",message="set exactly one queue source: queue.redis or queue.sqs"
type Queue struct {
	// redis is a Redis list or a Redis stream read by a consumer group.
	// +optional
	Redis *RedisQueue `json:"redis,omitempty"`

	// sqs is an Amazon SQS queue (or one of an SQS-compatible server).
	// +optional
	SQS *SQSQueue `json:"sqs,omitempty"`

	// targetDrainSeconds is how quickly a backlog should be worked off. Default 120.
	// +optional
	// +kubebuilder:default=120
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=86400
	TargetDrainSeconds int32 `json:"targetDrainSeconds,omitempty"`
}

// RedisQueue is a Redis list or stream and the server that holds it.
// +kubebuilder:validation:XValidation:rule="has(self.list) != has(self.stream)",message="set exactly one of queue.redis.list or queue.redis.stream"
// +kubebuilder:validation:XValidation:rule="!has(self.consumerGroup) || has(self.stream)",message="queue.redis.consumerGroup applies only to queue.redis.stream"
// +kubebuilder:validation:XValidation:rule="!has(self.stream) || has(self.consumerGroup)",message="queue.redis.stream needs queue.redis.consumerGroup"
// +kubebuilder:validation:XValidation:rule="!has(self.processingList) || has(self.list)",message="queue.redis.processingList applies only to queue.redis.list"
type RedisQueue struct {
	// The server: address, passwordSecretRef, tls, database.
	RedisConnection `json:",inline"`

	// list is the Redis list of pending jobs; backlog = LLEN.
	// +optional
	// +kubebuilder:validation:MinLength=1
	List string `json:"list,omitempty"`

	// processingList is the list that workers move jobs into while they work on them
	// (LMOVE/BLMOVE reliable queue); in-flight = its LLEN.
	// +optional
	// +kubebuilder:validation:MinLength=1
	ProcessingList string `json:"processingList,omitempty"`

	// stream is the Redis stream of jobs; backlog = the consumer group's lag.
	// +optional
	// +kubebuilder:validation:MinLength=1
	Stream string `json:"stream,omitempty"`

	// consumerGroup reads the stream; in-flight = its pending entries.
	// +optional
	// +kubebuilder:validation:MinLength=1
	ConsumerGroup string `json:"consumerGroup,omitempty"`
}

// LabelSQSCredentials marks a Secret whose keys may be used as AWS credentials for an SQS
// queue: the controller reads a credentialsSecretRef only from a Secret labelled with it set
// to "true", for the same reason as LabelRedisCredentials.
const LabelSQSCredentials = "capacity.claudecap.io/sqs-credentials"

// The keys of an SQS credentials Secret, named like the AWS SDKs' environment variables.
const (
	// SQSAccessKeyIDKey holds the access key id (required).
	SQSAccessKeyIDKey = "AWS_ACCESS_KEY_ID"
	// SQSSecretAccessKeyKey holds the secret access key (required).
	SQSSecretAccessKeyKey = "AWS_SECRET_ACCESS_KEY" //nolint:gosec // a key name in a Secret, not a credential
	// SQSSessionTokenKey holds a session token for temporary credentials (optional).
	SQSSessionTokenKey = "AWS_SESSION_TOKEN" //nolint:gosec // a key name in a Secret, not a credential
)

// SQSQueue is an Amazon SQS queue: backlog = ApproximateNumberOfMessages (visible
// messages), in-flight = ApproximateNumberOfMessagesNotVisible (received, not deleted).
// Every URL must be https, or http on loopback (127.0.0.1, ::1, localhost): the controller
// sends signed requests to them from inside the cluster.
// +kubebuilder:validation:XValidation:rule="isURL(self.queueURL) && (url(self.queueURL).getScheme() == 'https' || (url(self.queueURL).getScheme() == 'http' && url(self.queueURL).getHostname() in ['127.0.0.1', '::1', 'localhost']))",message="queue.sqs.queueURL must be an https URL, or http on loopback (127.0.0.1, ::1, localhost)"
// +kubebuilder:validation:XValidation:rule="!has(self.endpoint) || (isURL(self.endpoint) && (url(self.endpoint).getScheme() == 'https' || (url(self.endpoint).getScheme() == 'http' && url(self.endpoint).getHostname() in ['127.0.0.1', '::1', 'localhost'])))",message="queue.sqs.endpoint must be an https URL, or http on loopback (127.0.0.1, ::1, localhost)"
type SQSQueue struct {
	// queueURL is the queue's URL, for example
	// https://sqs.eu-west-1.amazonaws.com/123456789012/jobs.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=1024
	QueueURL string `json:"queueURL"`

	// region is the AWS region of the queue, for example eu-west-1. It signs the requests
	// and, without endpoint, picks the regional SQS endpoint.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=32
	// +kubebuilder:validation:Pattern=`^[a-z0-9]+(-[a-z0-9]+)*$`
	Region string `json:"region"`

	// endpoint overrides the SQS endpoint, for an SQS-compatible server or a VPC endpoint.
	// Default: the region's public endpoint.
	// +optional
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=1024
	Endpoint string `json:"endpoint,omitempty"`

	// credentialsSecretRef names the Secret with the AWS credentials: AWS_ACCESS_KEY_ID,
	// AWS_SECRET_ACCESS_KEY and optionally AWS_SESSION_TOKEN. The Secret must be labelled
	// capacity.claudecap.io/sqs-credentials=true: others are never read. The operator's own
	// AWS identity is never used for a workload's queue.
	// +required
	CredentialsSecretRef SecretRef `json:"credentialsSecretRef"`
}

// Limiter says where the pods' shared rate limiter keeps a private pool's state.
type Limiter struct {
	// redis is the limiter's server. Without it the workload has no shared limiter: usage
	// is not observed and the pool's limits are not published (RateLimited says so).
	// +required
	Redis RedisConnection `json:"redis"`
}

// Replicas bounds the target's replica count.
// +kubebuilder:validation:XValidation:rule="self.min <= self.max",message="replicas.min must not exceed replicas.max"
type Replicas struct {
	// min replicas. 0 allows scaling to zero when the queue is idle. Default 0.
	// +optional
	// +kubebuilder:default=0
	// +kubebuilder:validation:Minimum=0
	Min int32 `json:"min"`

	// max replicas, a hard ceiling whatever the budget allows.
	// +required
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=10000
	Max int32 `json:"max"`
}

// ScalingPolicy allows a step of value pods or percent within periodSeconds.
type ScalingPolicy struct {
	// type is Pods or Percent.
	// +required
	Type ScalingPolicyType `json:"type"`

	// value is the number of pods or the percent of current replicas.
	// +required
	// +kubebuilder:validation:Minimum=1
	Value int32 `json:"value"`

	// periodSeconds is the window the step is measured over.
	// +required
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=1800
	PeriodSeconds int32 `json:"periodSeconds"`
}

// ScalingRules shape changes in one direction, with HorizontalPodAutoscaler semantics.
type ScalingRules struct {
	// stabilizationSeconds: the controller uses the most conservative recommendation of this
	// window. Defaults: 0 up, 300 down.
	// +optional
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=3600
	StabilizationSeconds *int32 `json:"stabilizationSeconds,omitempty"`

	// selectPolicy picks the policy allowing the biggest (Max) or smallest (Min) change, or
	// disables this direction. Default Max.
	// +optional
	SelectPolicy *SelectPolicy `json:"selectPolicy,omitempty"`

	// policies bound each step. Defaults: up +100% or +4 pods per 30 s (bounded because
	// Anthropic applies acceleration limits), down 100% per 15 s.
	// +optional
	// +listType=atomic
	// +kubebuilder:validation:MaxItems=10
	Policies []ScalingPolicy `json:"policies,omitempty"`
}

// Behavior configures scale-up and scale-down separately.
type Behavior struct {
	// scaleUp rules.
	// +optional
	ScaleUp *ScalingRules `json:"scaleUp,omitempty"`

	// scaleDown rules.
	// +optional
	ScaleDown *ScalingRules `json:"scaleDown,omitempty"`
}

// OrganizationRef names a ClaudeOrganization.
type OrganizationRef struct {
	// name of the ClaudeOrganization (cluster-scoped).
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=63
	Name string `json:"name"`
}

// ClaudeCapacitySpec declares a worker fleet's traffic, whose limits it draws on and where
// its backlog lives.
// +kubebuilder:validation:XValidation:rule="has(self.limits) != has(self.organizationRef)",message="set exactly one of limits (a private pool of one) or organizationRef (an organization's shared budget)"
// +kubebuilder:validation:XValidation:rule="!has(self.organizationRef) || !has(self.limiter)",message="limiter applies only to a private pool: an organization's members use the organization's limiter"
// +kubebuilder:validation:XValidation:rule="!has(self.priorityClassName) || has(self.organizationRef)",message="priorityClassName needs organizationRef"
// +kubebuilder:validation:XValidation:rule="!has(self.guaranteedReplicas) || self.guaranteedReplicas == 0 || has(self.organizationRef)",message="guaranteedReplicas needs organizationRef"
// +kubebuilder:validation:XValidation:rule="!has(self.guaranteedReplicas) || self.guaranteedReplicas <= self.replicas.max",message="guaranteedReplicas must not exceed replicas.max"
type ClaudeCapacitySpec struct {
	// scaleTargetRef is the workload whose replicas are managed through /scale.
	// +required
	ScaleTargetRef ScaleTargetRef `json:"scaleTargetRef"`

	// model is the Claude model id or alias the workers call, for example claude-sonnet-4-5.
	// It maps to a model class; limits are pooled per class.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=128
	Model string `json:"model"`

	// organizationRef binds the workload to a ClaudeOrganization, the admin-owned budget it
	// shares with the organization's other members of the same model class. The
	// organization's namespaceSelector must select this namespace. Exclusive with limits.
	// +optional
	OrganizationRef *OrganizationRef `json:"organizationRef,omitempty"`

	// limits make the workload a private pool of one: its own budget, shared with nobody
	// (its limiter keys carry its namespace and name). Exclusive with organizationRef.
	// +optional
	Limits *Limits `json:"limits,omitempty"`

	// priorityClassName picks one of the organization's priority classes: higher classes
	// are served first when the budget is contended, and lower classes leave the
	// organization's reserve in the bucket for them on every call. Default: the
	// organization's lowest class. Only with organizationRef.
	// +optional
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=63
	PriorityClassName string `json:"priorityClassName,omitempty"`

	// guaranteedReplicas is a minimum the organization serves before any priority class:
	// the budget for this many replicas (at most the demand) is this workload's whatever
	// higher classes want. Default 0. Only with organizationRef.
	// +optional
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=10000
	GuaranteedReplicas int32 `json:"guaranteedReplicas,omitempty"`

	// headroomPercent is the share of each limit a private pool may plan to use, 1 to 100.
	// Default 90. Members of an organization use the organization's.
	// +optional
	// +kubebuilder:default=90
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=100
	HeadroomPercent int32 `json:"headroomPercent,omitempty"`

	// traffic is the declared expectation.
	// +required
	Traffic Traffic `json:"traffic"`

	// worker describes one replica.
	// +required
	Worker Worker `json:"worker"`

	// queue says where the backlog lives. Without it, demand follows declared traffic.
	// +optional
	Queue *Queue `json:"queue,omitempty"`

	// limiter says where a private pool's shared limiter keeps its state. Without it a
	// private pool has no shared limiter (the queue's server is never assumed). Members of
	// an organization use the organization's limiter.
	// +optional
	Limiter *Limiter `json:"limiter,omitempty"`

	// replicas bounds the replica count.
	// +required
	Replicas Replicas `json:"replicas"`

	// behavior shapes scaling steps.
	// +optional
	Behavior *Behavior `json:"behavior,omitempty"`

	// weight is this workload's share of a contended pool, 1 to 1000. Default 1.
	// +optional
	// +kubebuilder:default=1
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=1000
	Weight int32 `json:"weight,omitempty"`

	// pollIntervalSeconds is how often live signals are read. Default 2.
	// +optional
	// +kubebuilder:default=2
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=300
	PollIntervalSeconds int32 `json:"pollIntervalSeconds,omitempty"`
}

// QueueStatus is the last observed backlog.
type QueueStatus struct {
	// depth is the number of jobs waiting.
	// +optional
	Depth int64 `json:"depth"`

	// inFlight is the number of jobs being worked on.
	// +optional
	InFlight int64 `json:"inFlight"`

	// arrivalsPerMinute is the smoothed estimate of jobs arriving per minute; the declared
	// traffic until the queue has been observed.
	// +optional
	ArrivalsPerMinute int64 `json:"arrivalsPerMinute"`

	// lastPollTime is when the queue was last read successfully.
	// +optional
	LastPollTime *metav1.Time `json:"lastPollTime,omitempty"`
}

// ReplicaPoint is a replica count in force from time on.
type ReplicaPoint struct {
	// time the count took effect.
	// +required
	Time metav1.Time `json:"time"`

	// replicas counted.
	// +required
	Replicas int32 `json:"replicas"`
}

// ScalingHistory is the memory the scaling behavior needs: past recommendations for the
// stabilization windows and past replica counts for the policy periods. Kept in status so an
// operator restart in the middle of a spike resumes instead of flapping.
type ScalingHistory struct {
	// recommendations are past recommendations, oldest first.
	// +optional
	// +listType=atomic
	// +kubebuilder:validation:MaxItems=64
	Recommendations []ReplicaPoint `json:"recommendations,omitempty"`

	// observed are the target's replica counts at past decisions, oldest first.
	// +optional
	// +listType=atomic
	// +kubebuilder:validation:MaxItems=64
	Observed []ReplicaPoint `json:"observed,omitempty"`
}

// RateStatus is a rate per minute in each of the three dimensions.
type RateStatus struct {
	// requestsPerMinute.
	// +optional
	RequestsPerMinute int64 `json:"requestsPerMinute"`

	// inputTokensPerMinute, counted as Anthropic counts them.
	// +optional
	InputTokensPerMinute int64 `json:"inputTokensPerMinute"`

	// outputTokensPerMinute.
	// +optional
	OutputTokensPerMinute int64 `json:"outputTokensPerMinute"`
}

// ObservedStatus is live usage measured by the limiters.
type ObservedStatus struct {
	RateStatus `json:",inline"`

	// perReplicaRequestsPerMinute is the measured throughput of one busy replica: calls
	// completed per minute of running (ready) replica time while work waited, not counting
	// time the shared limiter or the API held the workers back. Absent until measured.
	// +optional
	PerReplicaRequestsPerMinute int64 `json:"perReplicaRequestsPerMinute,omitempty"`

	// rateLimitedRequests is the number of upstream 429s in the last window.
	// +optional
	RateLimitedRequests int64 `json:"rateLimitedRequests,omitempty"`

	// throttledRequests is the number of calls the shared limiter refused in the last
	// window (the pool had no room for them within the proxy's wait).
	// +optional
	ThrottledRequests int64 `json:"throttledRequests,omitempty"`

	// upstreamRemaining is what the API's last anthropic-ratelimit-* headers said is left of
	// the organization's limits (tokens rounded to thousands, as the API reports them);
	// others using the same organization show up here and not in this workload's usage.
	// +optional
	UpstreamRemaining *RateStatus `json:"upstreamRemaining,omitempty"`
}

// PlanStatus is what the declared traffic needs, from the capacity planner.
type PlanStatus struct {
	RateStatus `json:",inline"`

	// costPerRequestUSD is the average cost of one request, in US dollars.
	// +optional
	CostPerRequestUSD string `json:"costPerRequestUSD,omitempty"`

	// monthlyCostUSD is the cost of 30 days at the declared rate, in US dollars.
	// +optional
	MonthlyCostUSD string `json:"monthlyCostUSD,omitempty"`

	// smallestTier is the smallest usage tier that carries the traffic at the headroom, or
	// "custom" when none does.
	// +optional
	SmallestTier string `json:"smallestTier,omitempty"`

	// bindingDimension is the dimension closest to its limit: Requests, InputTokens or OutputTokens.
	// +optional
	BindingDimension string `json:"bindingDimension,omitempty"`

	// replicas is the replica count the declared traffic needs at the declared throughput.
	// +optional
	Replicas int32 `json:"replicas,omitempty"`
}

// ClaudeCapacityStatus is what the controller observed and decided.
type ClaudeCapacityStatus struct {
	// observedGeneration is the spec generation the status describes.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`

	// replicas is the target's current replica count, from /scale.
	// +optional
	Replicas int32 `json:"replicas"`

	// readyReplicas is how many of the target's pods are ready (from a Deployment's or
	// StatefulSet's status); the per-replica throughput estimate counts these, not the
	// replicas asked for. Absent when the target does not report it.
	// +optional
	ReadyReplicas *int32 `json:"readyReplicas,omitempty"`

	// desiredReplicas is what the controller wants the target to run.
	// +optional
	DesiredReplicas int32 `json:"desiredReplicas"`

	// demandReplicas is what the queue alone asks for.
	// +optional
	DemandReplicas int32 `json:"demandReplicas"`

	// capReplicas is the most the pool budget allows this workload.
	// +optional
	CapReplicas *int32 `json:"capReplicas,omitempty"`

	// limitedBy names the term that decided desiredReplicas.
	// +optional
	LimitedBy LimitReason `json:"limitedBy,omitempty"`

	// queue is the last observed backlog.
	// +optional
	Queue *QueueStatus `json:"queue,omitempty"`

	// limits are the effective limits of the pool: the organization's for the model class, or
	// the private pool's.
	// +optional
	Limits *RateStatus `json:"limits,omitempty"`

	// pool is the budget pool the workload's limiters draw from, as <organization>/<class>:
	// the part before the slash is the proxies' --organization (a private pool's is
	// <namespace>.<name>, which the proxy derives from --workload when --organization is
	// left out).
	// +optional
	Pool string `json:"pool,omitempty"`

	// observed is live usage from the limiters.
	// +optional
	Observed *ObservedStatus `json:"observed,omitempty"`

	// allocation is this workload's share of the pool budget, per minute.
	// +optional
	Allocation *RateStatus `json:"allocation,omitempty"`

	// plan is what the declared traffic needs.
	// +optional
	Plan *PlanStatus `json:"plan,omitempty"`

	// history is the scaling behavior's memory (see ScalingHistory).
	// +optional
	History *ScalingHistory `json:"history,omitempty"`

	// lastScaleTime is when the controller last changed the target's replicas.
	// +optional
	LastScaleTime *metav1.Time `json:"lastScaleTime,omitempty"`

	// conditions: Ready, TargetFound, PlanFits, ScalingActive, ScalingLimited, SignalsAvailable,
	// RateLimited.
	// +optional
	// +listType=map
	// +listMapKey=type
	// +kubebuilder:validation:MaxItems=16
	Conditions []metav1.Condition `json:"conditions,omitempty"`
}

// ClaudeCapacity sizes a worker fleet to its queue and to the organization's Claude rate limits.
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:shortName=ccap,categories=claudecap
// +kubebuilder:printcolumn:name="Target",type=string,JSONPath=`.spec.scaleTargetRef.name`
// +kubebuilder:printcolumn:name="Organization",type=string,JSONPath=`.spec.organizationRef.name`
// +kubebuilder:printcolumn:name="Replicas",type=integer,JSONPath=`.status.replicas`
// +kubebuilder:printcolumn:name="Running",type=integer,JSONPath=`.status.readyReplicas`
// +kubebuilder:printcolumn:name="Desired",type=integer,JSONPath=`.status.desiredReplicas`
// +kubebuilder:printcolumn:name="Queue",type=integer,JSONPath=`.status.queue.depth`
// +kubebuilder:printcolumn:name="Limited-By",type=string,JSONPath=`.status.limitedBy`
// +kubebuilder:printcolumn:name="Tier",type=string,JSONPath=`.status.plan.smallestTier`,priority=1
// +kubebuilder:printcolumn:name="Monthly-USD",type=string,JSONPath=`.status.plan.monthlyCostUSD`,priority=1
// +kubebuilder:printcolumn:name="Used-OTPM",type=integer,JSONPath=`.status.observed.outputTokensPerMinute`,priority=1
// +kubebuilder:printcolumn:name="Alloc-OTPM",type=integer,JSONPath=`.status.allocation.outputTokensPerMinute`,priority=1
// +kubebuilder:printcolumn:name="Limit-OTPM",type=integer,JSONPath=`.status.limits.outputTokensPerMinute`,priority=1
// +kubebuilder:printcolumn:name="Upstream-Left-OTPM",type=integer,JSONPath=`.status.observed.upstreamRemaining.outputTokensPerMinute`,priority=1
// +kubebuilder:printcolumn:name="429s",type=integer,JSONPath=`.status.observed.rateLimitedRequests`,priority=1
// +kubebuilder:printcolumn:name="Ready",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].status`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type ClaudeCapacity struct {
	metav1.TypeMeta `json:",inline"`

	// metadata is the standard object metadata.
	// +optional
	metav1.ObjectMeta `json:"metadata,omitzero"`

	// spec declares the workload.
	// +required
	Spec ClaudeCapacitySpec `json:"spec"`

	// status is what the controller observed and decided.
	// +optional
	Status ClaudeCapacityStatus `json:"status,omitzero"`
}

// ClaudeCapacityList is a list of ClaudeCapacity.
// +kubebuilder:object:root=true
type ClaudeCapacityList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitzero"`
	Items           []ClaudeCapacity `json:"items"`
}
