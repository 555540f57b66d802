// Package localcluster runs a small Kubernetes cluster with real workload machinery on
// one machine, every process on 127.0.0.1, from binaries that `make cluster-bins` builds
// from the Go module proxy into bin/k8s/<version>-linux-amd64/.
//
// envtest (internal/kubeenv) gives a real kube-apiserver and etcd, but nothing turns a
// Deployment into ReplicaSets and Pods, schedules them or runs them. Start adds the rest:
//
//   - etcd and kube-apiserver, started through envtest's Environment (kubeenv), so the
//     project's CRDs are installed and an admin user (system:masters) is provisioned.
//     The API server gets the flags a controller-manager needs: advertise-address and a
//     service-cluster-ip-range, endpoint-reconciler-type=none (no real endpoints for the
//     `kubernetes` Service), and the ServiceAccount admission plugin back on (envtest turns
//     it off). envtest already signs service-account tokens with its own key pair, so
//     TokenRequest works; the controller-manager gets the private half of that key.
//   - kube-controller-manager: every default controller (Deployments -> ReplicaSets ->
//     Pods, garbage collection, namespaces, service accounts and their tokens, node
//     lifecycle, ...), leader election off, serving only on 127.0.0.1.
//   - kube-scheduler: leader election off, serving only on 127.0.0.1.
//   - KWOK's `kwok` controller, which plays kubelet for fake Nodes: Start creates
//     Options.Nodes Nodes annotated kwok.x-k8s.io/node=fake, and kwok drives them and
//     the Pods scheduled to them through the Stages in the kwok.yaml that Start writes
//     (see kwokConfig): a Node becomes Ready at once and keeps its Lease renewed; a Pod
//     gets an IP and waiting containers at once, becomes Running and Ready
//     Options.PodStartDelay later, and is removed when deleted (at once, or when its
//     grace period ends with Options.HonorGracePeriod). No container ever runs.
//
// Each process logs to <Options.Dir>/<name>.log, next to the kubeconfig (admin user)
// and kwok.yaml. Stop ends every process; children that Start spawned itself also die
// with the parent process (Pdeathsig), so a crashed test leaves only envtest's two.
package localcluster
