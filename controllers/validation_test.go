package controllers

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	. "github.com/onsi/gomega"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	capacityv1alpha1 "github.com/claudecap/claudecap/api/v1alpha1"
	"github.com/claudecap/claudecap/internal/kubeenv"
)

// validClaudeCapacity returns a spec the API server accepts; each invalid case breaks
// exactly one rule of it.
func validClaudeCapacity(ns, name string) *capacityv1alpha1.ClaudeCapacity {
	return &capacityv1alpha1.ClaudeCapacity{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec: capacityv1alpha1.ClaudeCapacitySpec{
			ScaleTargetRef: capacityv1alpha1.ScaleTargetRef{APIVersion: "apps/v1", Kind: "Deployment", Name: "workers"},
			Model:          "claude-sonnet-4-5",
			Limits:         &capacityv1alpha1.Limits{Tier: capacityv1alpha1.Tier2},
			Traffic:        capacityv1alpha1.Traffic{RequestsPerMinute: 100, AvgInputTokens: 500, AvgOutputTokens: 200},
			Worker:         capacityv1alpha1.Worker{RequestsPerMinutePerReplica: 10},
			Queue: &capacityv1alpha1.Queue{Redis: &capacityv1alpha1.RedisQueue{
				RedisConnection: capacityv1alpha1.RedisConnection{Address: "127.0.0.1:6379"},
				List:            "jobs",
			}},
			Replicas: capacityv1alpha1.Replicas{Min: 0, Max: 10},
		},
	}
}

// validSQS is an SQS queue on AWS.
func validSQS() *capacityv1alpha1.SQSQueue {
	return &capacityv1alpha1.SQSQueue{QueueURL: "https://sqs.eu-west-1.amazonaws.com/123456789012/jobs", Region: "eu-west-1",
		CredentialsSecretRef: capacityv1alpha1.SecretRef{Name: "aws"}}
}

// SQS queues on AWS, behind an https endpoint, and on loopback over plain http are all
// accepted: the rule refuses only plain http off loopback.
func TestAPIServerAcceptsSQSQueues(t *testing.T) {
	g := NewWithT(t)
	ns := newNamespace(t)
	for i, edit := range []func(*capacityv1alpha1.SQSQueue){
		func(*capacityv1alpha1.SQSQueue) {},
		func(q *capacityv1alpha1.SQSQueue) { q.Endpoint = "https://sqs-compatible.example:8443" },
		func(q *capacityv1alpha1.SQSQueue) {
			q.QueueURL, q.Endpoint = "http://127.0.0.1:9324/queue/jobs", "http://127.0.0.1:9324"
		},
		func(q *capacityv1alpha1.SQSQueue) {
			q.QueueURL, q.Endpoint = "http://localhost:9324/queue/jobs", "http://[::1]:9324"
		},
	} {
		cc := validClaudeCapacity(ns, fmt.Sprintf("sqs-%d", i))
		cc.Spec.Queue.Redis, cc.Spec.Queue.SQS = nil, validSQS()
		edit(cc.Spec.Queue.SQS)
		g.Expect(k8sClient.Create(context.Background(), cc)).To(Succeed(), "%+v", cc.Spec.Queue.SQS)
	}
}

func TestAPIServerRefusesInvalidClaudeCapacities(t *testing.T) {
	ns := newNamespace(t)
	cases := []struct {
		name    string
		mutate  func(*capacityv1alpha1.ClaudeCapacitySpec)
		message string
	}{
		{"min above max", func(s *capacityv1alpha1.ClaudeCapacitySpec) { s.Replicas = capacityv1alpha1.Replicas{Min: 5, Max: 2} },
			"replicas.min must not exceed replicas.max"},
		{"headroom below 1", func(s *capacityv1alpha1.ClaudeCapacitySpec) { s.HeadroomPercent = -1 },
			"spec.headroomPercent: Invalid value: -1: spec.headroomPercent in body should be greater than or equal to 1"},
		{"headroom over 100", func(s *capacityv1alpha1.ClaudeCapacitySpec) { s.HeadroomPercent = 101 },
			"spec.headroomPercent in body should be less than or equal to 100"},
		{"no queue source", func(s *capacityv1alpha1.ClaudeCapacitySpec) { s.Queue.Redis = nil },
			"set exactly one queue source: queue.redis or queue.sqs"},
		{"redis and sqs", func(s *capacityv1alpha1.ClaudeCapacitySpec) { s.Queue.SQS = validSQS() },
			"set exactly one queue source: queue.redis or queue.sqs"},
		{"list and stream", func(s *capacityv1alpha1.ClaudeCapacitySpec) {
			s.Queue.Redis.Stream = "jobs"
			s.Queue.Redis.ConsumerGroup = "g"
		},
			"set exactly one of queue.redis.list or queue.redis.stream"},
		{"neither list nor stream", func(s *capacityv1alpha1.ClaudeCapacitySpec) { s.Queue.Redis.List = "" },
			"set exactly one of queue.redis.list or queue.redis.stream"},
		{"consumer group with a list", func(s *capacityv1alpha1.ClaudeCapacitySpec) { s.Queue.Redis.ConsumerGroup = "workers" },
			"queue.redis.consumerGroup applies only to queue.redis.stream"},
		{"stream without consumer group", func(s *capacityv1alpha1.ClaudeCapacitySpec) { s.Queue.Redis.List = ""; s.Queue.Redis.Stream = "jobs" },
			"queue.redis.stream needs queue.redis.consumerGroup"},
		{"processing list with a stream", func(s *capacityv1alpha1.ClaudeCapacitySpec) {
			s.Queue.Redis.List, s.Queue.Redis.Stream, s.Queue.Redis.ConsumerGroup, s.Queue.Redis.ProcessingList = "", "jobs", "g", "busy"
		}, "queue.redis.processingList applies only to queue.redis.list"},
		{"sqs endpoint over plain http", func(s *capacityv1alpha1.ClaudeCapacitySpec) {
			s.Queue.Redis, s.Queue.SQS = nil, validSQS()
			s.Queue.SQS.Endpoint = "http://10.0.0.5:9324"
		}, "queue.sqs.endpoint must be an https URL, or http on loopback (127.0.0.1, ::1, localhost)"},
		{"sqs endpoint on a host named like loopback", func(s *capacityv1alpha1.ClaudeCapacitySpec) {
			s.Queue.Redis, s.Queue.SQS = nil, validSQS()
			s.Queue.SQS.Endpoint = "http://127.0.0.1.evil.example:9324"
		}, "queue.sqs.endpoint must be an https URL"},
		{"sqs queue URL over plain http", func(s *capacityv1alpha1.ClaudeCapacitySpec) {
			s.Queue.Redis, s.Queue.SQS = nil, validSQS()
			s.Queue.SQS.QueueURL = "http://sqs.internal/1/jobs"
		}, "queue.sqs.queueURL must be an https URL, or http on loopback"},
		{"sqs queue URL not a URL", func(s *capacityv1alpha1.ClaudeCapacitySpec) {
			s.Queue.Redis, s.Queue.SQS = nil, validSQS()
			s.Queue.SQS.QueueURL = "jobs"
		}, "queue.sqs.queueURL must be an https URL"},
		{"sqs region that is a host name", func(s *capacityv1alpha1.ClaudeCapacitySpec) {
			s.Queue.Redis, s.Queue.SQS = nil, validSQS()
			s.Queue.SQS.Region = "evil.example/"
		}, "spec.queue.sqs.region in body should match"},
		{"sqs without a credentials Secret", func(s *capacityv1alpha1.ClaudeCapacitySpec) {
			s.Queue.Redis, s.Queue.SQS = nil, validSQS()
			s.Queue.SQS.CredentialsSecretRef.Name = ""
		}, "spec.queue.sqs.credentialsSecretRef.name in body should be at least 1 chars long"},
		{"limiter without an address", func(s *capacityv1alpha1.ClaudeCapacitySpec) { s.Limiter = &capacityv1alpha1.Limiter{} },
			"spec.limiter.redis.address in body should be at least 3 chars long"},
		{"no tier and no explicit limits", func(s *capacityv1alpha1.ClaudeCapacitySpec) {
			s.Limits = &capacityv1alpha1.Limits{RequestsPerMinute: ptr.To[int64](50)}
		}, "limits need a tier, or all three of requestsPerMinute, inputTokensPerMinute and outputTokensPerMinute"},
		{"unknown tier", func(s *capacityv1alpha1.ClaudeCapacitySpec) { s.Limits.Tier = "tier-9" },
			`spec.limits.tier: Unsupported value: "tier-9": supported values: "tier-1", "tier-2", "tier-3", "tier-4"`},
		{"zero request limit", func(s *capacityv1alpha1.ClaudeCapacitySpec) { s.Limits.RequestsPerMinute = ptr.To[int64](0) },
			"spec.limits.requestsPerMinute in body should be greater than or equal to 1"},
		{"negative output token limit", func(s *capacityv1alpha1.ClaudeCapacitySpec) { s.Limits.OutputTokensPerMinute = ptr.To[int64](-5) },
			"spec.limits.outputTokensPerMinute in body should be greater than or equal to 1"},
		{"zero average input tokens", func(s *capacityv1alpha1.ClaudeCapacitySpec) { s.Traffic.AvgInputTokens = 0 },
			"spec.traffic.avgInputTokens in body should be greater than or equal to 1"},
		{"zero average output tokens", func(s *capacityv1alpha1.ClaudeCapacitySpec) { s.Traffic.AvgOutputTokens = 0 },
			"spec.traffic.avgOutputTokens in body should be greater than or equal to 1"},
		{"cache hit ratio above one", func(s *capacityv1alpha1.ClaudeCapacitySpec) { s.Traffic.CacheHitRatio = ptr.To(1.5) },
			"spec.traffic.cacheHitRatio in body should be less than or equal to 1"},
		{"negative batch share", func(s *capacityv1alpha1.ClaudeCapacitySpec) { s.Traffic.BatchShare = ptr.To(-0.1) },
			"spec.traffic.batchShare in body should be greater than or equal to 0"},
		{"weight below 1", func(s *capacityv1alpha1.ClaudeCapacitySpec) { s.Weight = -2 },
			"spec.weight in body should be greater than or equal to 1"},
		{"zero max replicas", func(s *capacityv1alpha1.ClaudeCapacitySpec) { s.Replicas.Max = 0 },
			"spec.replicas.max in body should be greater than or equal to 1"},
		{"empty model", func(s *capacityv1alpha1.ClaudeCapacitySpec) { s.Model = "" },
			"spec.model in body should be at least 1 chars long"},
		{"limits and an organization", func(s *capacityv1alpha1.ClaudeCapacitySpec) {
			s.OrganizationRef = &capacityv1alpha1.OrganizationRef{Name: "acme-prod"}
		}, "set exactly one of limits (a private pool of one) or organizationRef (an organization's shared budget)"},
		{"neither limits nor an organization", func(s *capacityv1alpha1.ClaudeCapacitySpec) { s.Limits = nil },
			"set exactly one of limits (a private pool of one) or organizationRef"},
		{"own limiter in an organization", func(s *capacityv1alpha1.ClaudeCapacitySpec) {
			s.Limits, s.OrganizationRef = nil, &capacityv1alpha1.OrganizationRef{Name: "acme-prod"}
			s.Limiter = &capacityv1alpha1.Limiter{Redis: capacityv1alpha1.RedisConnection{Address: "10.0.0.1:6379"}}
		}, "limiter applies only to a private pool"},
		{"priority class in a private pool", func(s *capacityv1alpha1.ClaudeCapacitySpec) { s.PriorityClassName = "interactive" },
			"priorityClassName needs organizationRef"},
		{"guaranteed replicas in a private pool", func(s *capacityv1alpha1.ClaudeCapacitySpec) { s.GuaranteedReplicas = 2 },
			"guaranteedReplicas needs organizationRef"},
		{"guaranteed replicas above max", func(s *capacityv1alpha1.ClaudeCapacitySpec) {
			s.Limits, s.OrganizationRef = nil, &capacityv1alpha1.OrganizationRef{Name: "acme-prod"}
			s.GuaranteedReplicas = 11
		}, "guaranteedReplicas must not exceed replicas.max"},
		{"zero per-replica throughput", func(s *capacityv1alpha1.ClaudeCapacitySpec) { s.Worker.RequestsPerMinutePerReplica = 0 },
			"spec.worker.requestsPerMinutePerReplica in body should be greater than or equal to 1"},
		{"scaling policy of zero pods", func(s *capacityv1alpha1.ClaudeCapacitySpec) {
			s.Behavior = &capacityv1alpha1.Behavior{ScaleUp: &capacityv1alpha1.ScalingRules{
				Policies: []capacityv1alpha1.ScalingPolicy{{Type: capacityv1alpha1.PodsScalingPolicy, Value: 0, PeriodSeconds: 60}}}}
		}, "spec.behavior.scaleUp.policies[0].value in body should be greater than or equal to 1"},
		{"unknown select policy", func(s *capacityv1alpha1.ClaudeCapacitySpec) {
			s.Behavior = &capacityv1alpha1.Behavior{ScaleDown: &capacityv1alpha1.ScalingRules{SelectPolicy: ptr.To[capacityv1alpha1.SelectPolicy]("Fastest")}}
		}, `spec.behavior.scaleDown.selectPolicy: Unsupported value: "Fastest"`},
		{"target without kind", func(s *capacityv1alpha1.ClaudeCapacitySpec) { s.ScaleTargetRef.Kind = "" },
			"spec.scaleTargetRef.kind in body should be at least 1 chars long"},
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			g := NewWithT(t)
			cc := validClaudeCapacity(ns, "invalid-"+strings.ReplaceAll(strings.ToLower(tc.name), " ", "-"))
			tc.mutate(&cc.Spec)
			err := k8sClient.Create(context.Background(), cc)
			g.Expect(err).To(HaveOccurred(), "case %d must be refused", i)
			g.Expect(err.Error()).To(ContainSubstring(tc.message))
		})
	}
}

func TestAPIServerAcceptsSamplesAndFillsDefaults(t *testing.T) {
	g := NewWithT(t)
	ns := newNamespace(t)
	root, err := kubeenv.ModuleRoot()
	g.Expect(err).NotTo(HaveOccurred())
	paths, err := filepath.Glob(filepath.Join(root, "config", "samples", "capacity_*.yaml"))
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(paths).NotTo(BeEmpty())
	for _, path := range paths {
		raw, err := os.ReadFile(path)
		g.Expect(err).NotTo(HaveOccurred())
		var obj client.Object = &capacityv1alpha1.ClaudeCapacity{}
		if strings.Contains(string(raw), "kind: ClaudeOrganization") {
			obj = &capacityv1alpha1.ClaudeOrganization{}
		}
		g.Expect(yaml.UnmarshalStrict(raw, obj)).To(Succeed(), path)
		if _, isOrg := obj.(*capacityv1alpha1.ClaudeOrganization); isOrg {
			obj.SetName(obj.GetName() + "-" + ns) // cluster-scoped: one per test run
			defer func() { _ = k8sClient.Delete(context.Background(), obj) }()
		} else {
			obj.SetNamespace(ns)
		}
		g.Expect(k8sClient.Create(context.Background(), obj)).To(Succeed(), path)
	}

	// The minimal valid spec comes back with every documented default filled in.
	created := validClaudeCapacity(ns, "defaults")
	g.Expect(k8sClient.Create(context.Background(), created)).To(Succeed())
	got := &capacityv1alpha1.ClaudeCapacity{}
	g.Expect(k8sClient.Get(context.Background(), client.ObjectKeyFromObject(created), got)).To(Succeed())
	g.Expect(got.Spec.HeadroomPercent).To(Equal(int32(90)))
	g.Expect(got.Spec.Weight).To(Equal(int32(1)))
	g.Expect(got.Spec.PollIntervalSeconds).To(Equal(int32(2)))
	g.Expect(got.Spec.Queue.TargetDrainSeconds).To(Equal(int32(120)))
	g.Expect(got.Spec.Replicas.Min).To(Equal(int32(0)))
}

func TestAPIServerRefusesInvalidClaudeOrganizations(t *testing.T) {
	valid := func(name string) *capacityv1alpha1.ClaudeOrganization {
		return &capacityv1alpha1.ClaudeOrganization{
			ObjectMeta: metav1.ObjectMeta{Name: name},
			Spec: capacityv1alpha1.ClaudeOrganizationSpec{
				Limits:  capacityv1alpha1.OrganizationLimits{Tier: capacityv1alpha1.Tier2},
				Limiter: capacityv1alpha1.OrganizationLimiter{Redis: capacityv1alpha1.OrganizationRedis{Address: "127.0.0.1:6379"}},
			},
		}
	}
	cases := []struct {
		name    string
		mutate  func(*capacityv1alpha1.ClaudeOrganization)
		message string
	}{
		{"no tier and a class without all limits", func(o *capacityv1alpha1.ClaudeOrganization) {
			o.Spec.Limits = capacityv1alpha1.OrganizationLimits{Classes: []capacityv1alpha1.ClassLimits{
				{Class: "sonnet-4", RequestsPerMinute: ptr.To[int64](50)}}}
		}, "limits need a tier, or classes that each give all three"},
		{"no tier and no classes", func(o *capacityv1alpha1.ClaudeOrganization) { o.Spec.Limits = capacityv1alpha1.OrganizationLimits{} },
			"limits need a tier"},
		{"a class twice", func(o *capacityv1alpha1.ClaudeOrganization) {
			o.Spec.Limits.Classes = []capacityv1alpha1.ClassLimits{{Class: "sonnet-4"}, {Class: "sonnet-4"}}
		}, "Duplicate value"},
		{"name that is no DNS label", func(o *capacityv1alpha1.ClaudeOrganization) { o.Name = "acme.prod" },
			"a ClaudeOrganization's name must be a DNS label"},
		{"unknown default priority class", func(o *capacityv1alpha1.ClaudeOrganization) {
			o.Spec.PriorityClasses = []capacityv1alpha1.PriorityClass{{Name: "batch", Value: 1}}
			o.Spec.DefaultPriorityClassName = "interactive"
		}, "defaultPriorityClassName must name one of priorityClasses"},
		{"reserve above 90%", func(o *capacityv1alpha1.ClaudeOrganization) {
			o.Spec.PriorityClasses = []capacityv1alpha1.PriorityClass{{Name: "interactive", Value: 10, ReservePercent: 95}}
		}, "reservePercent in body should be less than or equal to 90"},
		{"headroom over 100", func(o *capacityv1alpha1.ClaudeOrganization) { o.Spec.HeadroomPercent = 101 },
			"spec.headroomPercent in body should be less than or equal to 100"},
		{"no limiter address", func(o *capacityv1alpha1.ClaudeOrganization) { o.Spec.Limiter.Redis.Address = "" },
			"spec.limiter.redis.address in body should be at least 3 chars long"},
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			g := NewWithT(t)
			org := valid(fmt.Sprintf("invalid-%d", i))
			tc.mutate(org)
			err := k8sClient.Create(context.Background(), org)
			if err == nil {
				_ = k8sClient.Delete(context.Background(), org)
			}
			g.Expect(err).To(HaveOccurred(), "case %d must be refused", i)
			g.Expect(err.Error()).To(ContainSubstring(tc.message))
		})
	}

	// The valid one is accepted and defaulted: headroom 90, output accounting Produced.
	g := NewWithT(t)
	org := valid("valid-defaults")
	g.Expect(k8sClient.Create(context.Background(), org)).To(Succeed())
	defer func() { _ = k8sClient.Delete(context.Background(), org) }()
	got := &capacityv1alpha1.ClaudeOrganization{}
	g.Expect(k8sClient.Get(context.Background(), client.ObjectKeyFromObject(org), got)).To(Succeed())
	g.Expect(got.Spec.HeadroomPercent).To(Equal(int32(90)))
	g.Expect(got.Spec.Limits.OutputAccounting).To(Equal(capacityv1alpha1.OutputAccountingProduced))
	g.Expect(got.Spec.NamespaceSelector).To(BeNil(), "no namespace is selected unless the administrators say so")
}
