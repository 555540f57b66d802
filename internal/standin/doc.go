// Package standin plays the pods of one Deployment in process: on a control plane that has
// no kube-controller-manager and no kubelet (envtest's kube-apiserver and etcd, as the
// closed-loop scenario lab uses) it simulates them, so the operator sees what a cluster
// would show it; on a local cluster whose Pods run no containers (internal/localcluster, as
// `make dev` uses) it runs the workers of the real Pods (Config.FollowPods, below).
//
// By default a [Fleet] follows the Deployment's spec.replicas. It creates pods with increasing names
// (<deployment>-1, <deployment>-2, ...); each pod starts its own sidecar (normally a
// claudecap proxy, see [InProcessProxy]) at once and is Starting for Config.StartDelay, then
// Ready, and only a Ready pod's worker takes jobs. On scale-in the newest pods stop first,
// Starting ones before Ready ones, as a ReplicaSet prefers to delete pods that are not ready.
// A stopped pod is Terminating: it takes no new job, finishes the one in hand (the API call
// and the acknowledgement) and exits; when Config.GracePeriod runs out first, its call is
// cancelled and the job goes back to the queue, as after a SIGKILL a reliable queue would.
//
// The fleet writes the Deployment's status through the status subresource as the workload
// controller would: replicas (pods not terminating), readyReplicas and availableReplicas
// (Ready pods), so the operator can tell the workers it asked for from the workers that run.
//
// With Config.FollowPods the fleet plays real Pods instead, on a cluster with a
// kube-controller-manager but no kubelet that runs containers (internal/localcluster, whose
// KWOK nodes only move Pods through their states): it lists the Pods the Deployment's
// selector matches, starts a pod (sidecar, then worker) for each, lets its worker take jobs
// once the Pod is Ready, and terminates it as above when the Pod gets a deletionTimestamp,
// the job in hand being cancelled and requeued at the deletionTimestamp, when the Pod's
// grace period ends. The controller-manager keeps the Deployment's status then.
//
// Each worker uses the reliable queue patterns the ClaudeCapacity queue signals assume: a
// Redis list with a processing list (BLMOVE, then LREM to acknowledge) or a stream with a
// consumer group (XREADGROUP, then XACK). A job whose call fails goes back to the queue in
// one atomic step, so none is lost and none is acknowledged twice; [Fleet.Acked] is the
// ground truth tests use to prove it.
package standin
