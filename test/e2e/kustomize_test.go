//go:build e2e

package e2e

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"sigs.k8s.io/controller-runtime/pkg/client"

	capacityv1alpha1 "github.com/claudecap/claudecap/api/v1alpha1"
)

// TestKustomizeInstall is the other install path (`make deploy`): config/default applied
// with kubectl's kustomize, the operator run under that ServiceAccount's token, a backlog
// scaled out to the cap and worked off with every job done once, a metrics scrape, the same
// RBAC audit, and
// `make undeploy`'s delete.
func TestKustomizeInstall(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
	defer cancel()
	cluster, kube, cs, tl, managerBin := setUp(ctx, t)
	const namespace, manager = "claudecap-system", "claudecap-controller-manager"

	top := t
	p := &phases{t: t}
	var op *operator
	p.run("kustomize-apply", func(t *testing.T) string {
		tl.run(ctx, t, tl.kubectl, "apply", "-k", "config/default")
		op = startOperator(ctx, t, cluster, cs, managerBin, managerDeployment(ctx, t, kube, namespace, manager))
		top.Cleanup(op.stop)
		return "kubectl apply -k config/default; the manager runs under its ServiceAccount's token"
	})
	w := newWorkload(ctx, t, kube, cluster)
	p.run("scale-out-and-drain", func(t *testing.T) string {
		w.push(t, 600) // demand above the cap: 600 over 30 s is 1,260 requests per minute
		eventually(t, 90*time.Second, "replicas at the cap", func() (bool, string) {
			cc, dep := w.read(t)
			return dep.spec() == capReplicas && cc.Status.LimitedBy == capacityv1alpha1.LimitedByRequests, w.describe(cc, dep)
		})
		took := eventually(t, 120*time.Second, "every job done, replicas at the minimum", func() (bool, string) {
			cc, dep := w.read(t)
			return w.depth(t) == 0 && w.pending(t) == 0 && dep.spec() == minReplicas, w.describe(cc, dep)
		})
		if lost, twice := w.count(t); len(lost) > 0 || len(twice) > 0 {
			t.Fatalf("lost %v, processed more than once %v", lost, twice)
		}
		return fmt.Sprintf("600 jobs: out to %d replicas and back to %d in %.1f s; 0 lost, 0 duplicated", capReplicas, minReplicas, took.Seconds())
	})
	p.run("metrics-scrape", func(t *testing.T) string { return scrapeMetrics(ctx, t, kube, cs, op) })
	op.stop()
	auditRBAC(ctx, t, kube, cluster, op, namespace, manager, p)

	p.run("kustomize-delete", func(t *testing.T) string {
		out := tl.run(ctx, t, tl.kubectl, "delete", "-k", "config/default", "--wait=false")
		if !strings.Contains(out, "deployment.apps \""+manager+"\" deleted") {
			t.Fatalf("kubectl delete -k did not delete the manager:\n%s", out)
		}
		dep := &appsv1.Deployment{}
		if err := kube.Get(ctx, client.ObjectKey{Namespace: namespace, Name: manager}, dep); err == nil && dep.DeletionTimestamp == nil {
			t.Fatal("the manager Deployment is still there after kubectl delete -k")
		} else if err != nil && !apierrors.IsNotFound(err) {
			t.Fatal(err)
		}
		return "kubectl delete -k removes everything it applied, the CRDs (and so every ClaudeCapacity) included"
	})
	t.Logf("phases:\n%s", p.table())
}
