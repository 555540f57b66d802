package controllerbench

import (
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	capacityv1alpha1 "github.com/claudecap/claudecap/api/v1alpha1"
)

// workerDeployment is a worker fleet as a user would declare it. envtest runs no
// Deployment controller, so no pods ever start; the benchmarks only watch spec.replicas.
func workerDeployment(ns, name string, replicas int32) *appsv1.Deployment {
	labels := map[string]string{"app": name}
	return &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec: appsv1.DeploymentSpec{
			Replicas: ptr.To(replicas),
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "worker", Image: "busybox"}}},
			},
		},
	}
}

// defaultCapacity is a ClaudeCapacity for the Deployment of the same name on a Redis list,
// with every tuning knob left at its default: poll interval (2 s), behavior (no scale-up
// window, steps of +100% or +4 pods per 30 s; scale-down window 300 s) and drain time.
// Declared traffic equals one replica's throughput, so an empty queue asks for exactly the
// one replica the Deployment starts with and the controller leaves it alone until the
// backlog moves.
func defaultCapacity(ns, name, redisAddr string) *capacityv1alpha1.ClaudeCapacity {
	return &capacityv1alpha1.ClaudeCapacity{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec: capacityv1alpha1.ClaudeCapacitySpec{
			ScaleTargetRef: capacityv1alpha1.ScaleTargetRef{APIVersion: "apps/v1", Kind: "Deployment", Name: name},
			Model:          "claude-sonnet-4-5",
			Limits:         &capacityv1alpha1.Limits{Tier: capacityv1alpha1.Tier4},
			Traffic:        capacityv1alpha1.Traffic{RequestsPerMinute: 30, AvgInputTokens: 1000, AvgOutputTokens: 200},
			Worker:         capacityv1alpha1.Worker{RequestsPerMinutePerReplica: 30},
			Queue: &capacityv1alpha1.Queue{Redis: &capacityv1alpha1.RedisQueue{
				RedisConnection: capacityv1alpha1.RedisConnection{Address: redisAddr},
				List:            queueList(name),
				ProcessingList:  queueList(name) + ":processing",
			}},
			Limiter:  &capacityv1alpha1.Limiter{Redis: capacityv1alpha1.RedisConnection{Address: redisAddr}},
			Replicas: capacityv1alpha1.Replicas{Min: 0, Max: 50},
		},
	}
}

// fleetOrganization is one of the fleet's budget pools: tier 4, its limiter on limiterAddr,
// selecting the namespaces labelled for it.
func fleetOrganization(name, limiterAddr string) *capacityv1alpha1.ClaudeOrganization {
	return &capacityv1alpha1.ClaudeOrganization{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: capacityv1alpha1.ClaudeOrganizationSpec{
			Limits:            capacityv1alpha1.OrganizationLimits{Tier: capacityv1alpha1.Tier4},
			Limiter:           capacityv1alpha1.OrganizationLimiter{Redis: capacityv1alpha1.OrganizationRedis{Address: limiterAddr}},
			NamespaceSelector: &metav1.LabelSelector{MatchLabels: map[string]string{fleetLabel: "true"}},
		},
	}
}

// fleetLabel marks the namespaces the fleet's organizations select.
const fleetLabel = "bench.claudecap.io/fleet"

// queueList is the Redis list a benchmark workload's jobs wait in.
func queueList(name string) string { return "jobs:" + name }
