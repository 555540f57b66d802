package helm

import (
	"fmt"
	"strings"
	"testing"

	. "github.com/onsi/gomega"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// TestHelmInstall runs the install instructions against a real API server: `helm install`
// with default values, the ClaudeCapacity example from NOTES.txt, `kubectl get ccap`, and
// `helm uninstall`. envtest runs no controllers, so no pod starts; the manager pod spec is
// instead submitted as a Pod to a namespace that enforces the restricted Pod Security Standard.
func TestHelmInstall(t *testing.T) {
	g := NewWithT(t)
	ctx := t.Context()
	out := helm(t, "install", release, chartPath, "--namespace", namespace, "--create-namespace")
	g.Expect(string(out)).To(ContainSubstring("STATUS: deployed"))

	for _, want := range render(t, release, namespace) {
		got := &unstructured.Unstructured{}
		got.SetGroupVersionKind(want.GroupVersionKind())
		g.Expect(cluster.client.Get(ctx, client.ObjectKeyFromObject(want), got)).To(Succeed(), "%s %s installed", want.GetKind(), want.GetName())
		g.Expect(got.GetLabels()).To(HaveKeyWithValue("app.kubernetes.io/managed-by", "Helm"))
	}
	crd := &metav1.PartialObjectMetadata{}
	crd.SetGroupVersionKind(schema.GroupVersionKind{Group: "apiextensions.k8s.io", Version: "v1", Kind: "CustomResourceDefinition"})
	g.Expect(cluster.client.Get(ctx, client.ObjectKey{Name: "claudecapacities.capacity.claudecap.io"}, crd)).
		To(Succeed(), "helm installs the CRD from the chart's crds/")
	t.Log("checked: helm install created the CRD and every object `helm template` renders")

	applyNotesExample(t)

	dep := &appsv1.Deployment{}
	g.Expect(cluster.client.Get(ctx, client.ObjectKey{Namespace: namespace, Name: "claudecap-controller-manager"}, dep)).To(Succeed())
	admittedAsRestricted(t, "claudecap-manager", dep.Spec.Template.Spec)

	helm(t, "uninstall", release, "--namespace", namespace)
	err := cluster.client.Get(ctx, client.ObjectKeyFromObject(dep), &appsv1.Deployment{})
	g.Expect(apierrors.IsNotFound(err)).To(BeTrue(), "the Deployment is gone after helm uninstall, got %v", err)
	g.Expect(cluster.client.Get(ctx, client.ObjectKeyFromObject(crd), crd)).
		To(Succeed(), "helm uninstall keeps the CRD, and with it the users' ClaudeCapacities")
	t.Log("checked: helm uninstall removes the manager and keeps the CRD")
}

// applyNotesExample applies the ClaudeCapacity that NOTES.txt shows the user, and reads it
// back with the kubectl command NOTES.txt gives.
func applyNotesExample(t *testing.T) {
	g := NewWithT(t)
	notes := string(helm(t, "get", "notes", release, "--namespace", namespace))
	example, err := heredoc(notes)
	g.Expect(err).NotTo(HaveOccurred())
	const workers = "workers"
	example = strings.ReplaceAll(example, "<workers-namespace>", workers)
	objs, err := parseManifests([]byte(example))
	g.Expect(err).NotTo(HaveOccurred(), "the example in NOTES.txt is YAML:\n%s", example)
	ccap, err := objs.only("ClaudeCapacity")
	g.Expect(err).NotTo(HaveOccurred())

	g.Expect(cluster.client.Create(t.Context(), &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: workers}})).To(Succeed())
	ccap.SetNamespace(workers)
	g.Expect(cluster.client.Create(t.Context(), ccap, client.FieldValidation(metav1.FieldValidationStrict))).
		To(Succeed(), "the API server accepts the example in NOTES.txt, every field of it known")

	listed, err := runTool(t.Context(), cluster.kubectl, "get", "ccap", "-A", "--kubeconfig", cluster.kubeconfig)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(string(listed)).To(MatchRegexp(`(?m)^%s\s+summarizer\s`, workers))
	t.Log("checked: the ClaudeCapacity example in NOTES.txt is accepted and listed by `kubectl get ccap -A`")
}

// heredoc returns the body of the first `<<'EOF'` here-document in a text, read the way a
// shell reads it: up to a line that is exactly EOF, with nothing stripped.
func heredoc(text string) (string, error) {
	_, rest, ok := strings.Cut(text, "<<'EOF'\n")
	if !ok {
		return "", fmt.Errorf("no <<'EOF' here-document in:\n%s", text)
	}
	body, _, ok := strings.Cut(rest, "\nEOF\n")
	if !ok {
		return "", fmt.Errorf("here-document without a line that is exactly EOF in:\n%s", text)
	}
	return body, nil
}

// admittedAsRestricted submits a pod with the given spec to a namespace that enforces the
// restricted Pod Security Standard, and the same pod without its security contexts, which
// must be refused: otherwise the namespace would not be enforcing anything.
func admittedAsRestricted(t *testing.T, name string, spec corev1.PodSpec) {
	g := NewWithT(t)
	ctx := t.Context()
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{
		Name:   "restricted-" + name,
		Labels: map[string]string{"pod-security.kubernetes.io/enforce": "restricted"},
	}}
	g.Expect(cluster.client.Create(ctx, ns)).To(Succeed())

	pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: ns.Name, Name: name}, Spec: *spec.DeepCopy()}
	g.Expect(cluster.client.Create(ctx, pod)).To(Succeed(), "the manager pod meets the restricted Pod Security Standard")

	bare := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: ns.Name, Name: name + "-bare"}, Spec: *spec.DeepCopy()}
	bare.Spec.SecurityContext = nil
	for i := range bare.Spec.Containers {
		bare.Spec.Containers[i].SecurityContext = nil
	}
	err := cluster.client.Create(ctx, bare)
	g.Expect(err).To(MatchError(ContainSubstring("violates PodSecurity")), "namespace %s enforces the restricted standard", ns.Name)
	t.Logf("checked: pod spec of %s is admitted under the restricted Pod Security Standard", name)
}

// TestAllFeaturesApply creates every object the chart renders with every optional feature
// on, in its own release and namespace. The ServiceMonitor and the PrometheusRule are the
// objects not sent: their CRDs belong to the Prometheus operator, which envtest does not
// have (test/helm checks them in Go instead: wiring, and the rules with Prometheus's parser).
func TestAllFeaturesApply(t *testing.T) {
	g := NewWithT(t)
	const fullRelease = "claudecap-full"
	objs := render(t, fullRelease, fullRelease, "--values", allFeaturesValues)
	g.Expect(checkWiring(objs, fullRelease)).To(Succeed(), "wiring with another release name")
	g.Expect(cluster.client.Create(t.Context(), &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: fullRelease}})).To(Succeed())

	var created int
	var prometheusKinds []string
	for _, obj := range objs {
		if obj.GroupVersionKind().Group == "monitoring.coreos.com" {
			prometheusKinds = append(prometheusKinds, obj.GetKind())
			continue
		}
		g.Expect(cluster.client.Create(t.Context(), obj)).To(Succeed(), "creating %s %s", obj.GetKind(), obj.GetName())
		created++
	}
	g.Expect(prometheusKinds).To(ConsistOf("ServiceMonitor", "PrometheusRule"), "Prometheus operator objects rendered")
	for _, kind := range []string{"NetworkPolicy", "PodDisruptionBudget", "ConfigMap"} {
		g.Expect(objs.ofKind(kind)).NotTo(BeEmpty(), "%s objects are among those sent", kind)
	}

	pod, err := readManagerPod(objs)
	g.Expect(err).NotTo(HaveOccurred())
	admittedAsRestricted(t, fullRelease, pod.template.Spec)
	t.Logf("checked: the API server accepted all %d objects of the all-features render (ServiceMonitor and PrometheusRule rendered, not sent)", created)
}
