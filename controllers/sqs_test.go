package controllers

import (
	"context"
	"testing"

	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	capacityv1alpha1 "github.com/claudecap/claudecap/api/v1alpha1"
	"github.com/claudecap/claudecap/internal/testutil/sqstest"
)

// sqsCredentials creates the Secret with srv's credentials, labelled with label (none when
// empty).
func sqsCredentials(g Gomega, ns, name, label string) *corev1.Secret {
	secret := &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Data: map[string][]byte{
			capacityv1alpha1.SQSAccessKeyIDKey:     []byte(sqstest.AccessKeyID),
			capacityv1alpha1.SQSSecretAccessKeyKey: []byte(sqstest.SecretAccessKey),
		},
	}
	if label != "" {
		secret.Labels = map[string]string{label: "true"}
	}
	g.Expect(k8sClient.Create(context.Background(), secret)).To(Succeed())
	return secret
}

// sqsQueued is queued (tier 4, 30 requests per minute per replica, 1 s polls) on an SQS
// queue of srv instead of a Redis list, with no limiter setting.
func sqsQueued(ns string, srv *sqstest.Server, queueURL, secret string) *capacityv1alpha1.ClaudeCapacity {
	cc := queued(ns, "workers", "127.0.0.1:1", "unused")
	cc.Spec.Limiter = nil
	cc.Spec.Queue = &capacityv1alpha1.Queue{
		SQS: &capacityv1alpha1.SQSQueue{QueueURL: queueURL, Region: sqstest.Region, Endpoint: srv.Endpoint(),
			CredentialsSecretRef: capacityv1alpha1.SecretRef{Name: secret}},
		TargetDrainSeconds: 120,
	}
	return cc
}

// An SQS queue scales its workers like a Redis one: visible messages are the backlog,
// received ones in flight; with the server gone, replicas are held and SignalsAvailable
// says why. A workload without limiter.redis has no shared limiter, and says so.
func TestSQSQueueScalesToDemandAndHoldsWhenTheServerStops(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	srv := sqstest.Start(t)
	ns := newNamespace(t)
	queueURL := srv.CreateQueue(t, "translations")
	sqsCredentials(g, ns, "sqs", capacityv1alpha1.LabelSQSCredentials)
	g.Expect(k8sClient.Create(ctx, newDeployment(ns, "workers", 1))).To(Succeed())
	cc := sqsQueued(ns, srv, queueURL, "sqs")
	g.Expect(k8sClient.Create(ctx, cc)).To(Succeed())

	// An empty, quiet queue needs nothing: min replicas is 0.
	g.Eventually(func(g Gomega) {
		got := getCC(g, cc)
		sig := conditionOf(g, got, capacityv1alpha1.ConditionSignalsAvailable)
		g.Expect(sig.Status).To(Equal(metav1.ConditionTrue), sig.Message)
		g.Expect(sig.Message).To(ContainSubstring("SQS queue " + queueURL))
		g.Expect(got.Status.Queue).NotTo(BeNil())
		g.Expect(got.Status.DemandReplicas).To(BeZero())
		g.Expect(specReplicas(g, ns, "workers")).To(BeZero())
		limiter := conditionOf(g, got, capacityv1alpha1.ConditionRateLimited)
		g.Expect(limiter.Reason).To(Equal(capacityv1alpha1.ReasonNoLimiter))
		g.Expect(limiter.Message).To(ContainSubstring("spec.limiter.redis"))
	}, eventually).Should(Succeed())

	// 600 messages to drain in 120 s need at least 10 replicas of 30/min (11 with the
	// declared arrivals; the burst raises the arrival estimate further). 5 are received
	// and in flight; goaws still counts them in ApproximateNumberOfMessages.
	srv.Send(t, queueURL, 600)
	g.Expect(srv.Receive(t, queueURL, 5)).To(Equal(5))
	g.Eventually(func(g Gomega) {
		got := getCC(g, cc)
		g.Expect(got.Status.Queue.Depth).To(Equal(int64(600)))
		g.Expect(got.Status.Queue.InFlight).To(Equal(int64(5)))
		g.Expect(got.Status.DemandReplicas).To(BeNumerically(">=", 11))
		g.Expect(got.Status.DesiredReplicas).To(Equal(got.Status.DemandReplicas))
		g.Expect(specReplicas(g, ns, "workers")).To(Equal(got.Status.DesiredReplicas))
		g.Expect(got.Status.LimitedBy).To(Equal(capacityv1alpha1.LimitedByQueue))
		g.Expect(meta.IsStatusConditionTrue(got.Status.Conditions, capacityv1alpha1.ConditionSignalsAvailable)).To(BeTrue())
	}, eventually).Should(Succeed())

	srv.Stop()
	var held int32
	g.Eventually(func(g Gomega) {
		got := getCC(g, cc)
		sig := conditionOf(g, got, capacityv1alpha1.ConditionSignalsAvailable)
		g.Expect(sig.Status).To(Equal(metav1.ConditionFalse))
		g.Expect(sig.Reason).To(Equal(capacityv1alpha1.ReasonSignalsUnavailable))
		g.Expect(sig.Message).To(ContainSubstring(srv.Endpoint()))
		g.Expect(sig.Message).NotTo(ContainSubstring(sqstest.SecretAccessKey))
		g.Expect(got.Status.LimitedBy).To(Equal(capacityv1alpha1.LimitedByHeld))
		held = specReplicas(g, ns, "workers")
		g.Expect(held).To(BeNumerically(">=", 11))
	}, eventually).Should(Succeed())
	// Held, not scaled to zero on missing data, for several polls.
	g.Consistently(func(g Gomega) { g.Expect(specReplicas(g, ns, "workers")).To(Equal(held)) }, "4s").Should(Succeed())
}

// Whoever may create a ClaudeCapacity must not be able to use a Secret of the namespace
// as AWS credentials unless its owners labelled it for that: a Secret labelled for Redis
// passwords is not enough.
func TestSQSCredentialsComeOnlyFromSecretsLabelledForSQS(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	srv := sqstest.Start(t)
	ns := newNamespace(t)
	queueURL := srv.CreateQueue(t, "jobs")
	srv.Send(t, queueURL, 3)
	secret := sqsCredentials(g, ns, "aws", capacityv1alpha1.LabelRedisCredentials)
	g.Expect(k8sClient.Create(ctx, newDeployment(ns, "workers", 2))).To(Succeed())
	cc := sqsQueued(ns, srv, queueURL, "aws")
	g.Expect(k8sClient.Create(ctx, cc)).To(Succeed())

	g.Eventually(func(g Gomega) {
		sig := conditionOf(g, cc, capacityv1alpha1.ConditionSignalsAvailable)
		g.Expect(sig.Status).To(Equal(metav1.ConditionFalse))
		g.Expect(sig.Reason).To(Equal(capacityv1alpha1.ReasonSecretUnreadable))
		g.Expect(sig.Message).To(ContainSubstring("not labelled " + capacityv1alpha1.LabelSQSCredentials + "=true"))
		g.Expect(sig.Message).NotTo(ContainSubstring(sqstest.SecretAccessKey))
	}, eventually).Should(Succeed())
	g.Expect(specReplicas(g, ns, "workers")).To(Equal(int32(2)), "replicas are held while signals are unavailable")

	secret.Labels = map[string]string{capacityv1alpha1.LabelSQSCredentials: "true"}
	g.Expect(k8sClient.Update(ctx, secret)).To(Succeed())
	g.Eventually(func(g Gomega) {
		got := getCC(g, cc)
		g.Expect(meta.IsStatusConditionTrue(got.Status.Conditions, capacityv1alpha1.ConditionSignalsAvailable)).To(BeTrue())
		g.Expect(got.Status.Queue.Depth).To(Equal(int64(3)))
	}, eventually).Should(Succeed())
}
