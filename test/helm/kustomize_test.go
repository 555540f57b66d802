package helm

import (
	"os"
	"path/filepath"
	"testing"

	. "github.com/onsi/gomega"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/claudecap/claudecap/internal/kubeenv"
)

// TestKustomizeDefaultInstalls holds `make deploy` and `make build-installer` to the same
// bar as the chart: config/default renders, its parts fit together, and the API server
// accepts every object.
func TestKustomizeDefaultInstalls(t *testing.T) {
	g := NewWithT(t)
	root, err := kubeenv.ModuleRoot()
	g.Expect(err).NotTo(HaveOccurred())
	assets, err := kubeenv.AssetsDir()
	g.Expect(err).NotTo(HaveOccurred())
	kubectl := filepath.Join(assets, "kubectl")
	if _, err := os.Stat(kubectl); err != nil {
		t.Fatalf("no kubectl next to the envtest binaries (%v): run `make envtest`", err)
	}
	out, err := runTool(t.Context(), kubectl, "kustomize", filepath.Join(root, "config", "default"))
	g.Expect(err).NotTo(HaveOccurred(), string(out))
	objs, err := parseManifests(out)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(objs.ofKind("Deployment")).To(HaveLen(1))
	// The manager watches every kind it serves and does not start without its CRD.
	bases, err := filepath.Glob(filepath.Join(root, "config", "crd", "bases", "*.yaml"))
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(objs.ofKind("CustomResourceDefinition")).To(HaveLen(len(bases)),
		"config/crd/kustomization.yaml lists every CRD of config/crd/bases")
	g.Expect(checkWiring(objs, "claudecap-system")).To(Succeed())

	for _, obj := range objs {
		err := cluster.client.Create(t.Context(), obj.DeepCopy())
		if apierrors.IsAlreadyExists(err) {
			// The chart's install test made an object of the same name (they share names on
			// purpose); have the server validate this one as a dry-run update instead.
			existing := obj.DeepCopy()
			g.Expect(cluster.client.Get(t.Context(), client.ObjectKeyFromObject(obj), existing)).To(Succeed())
			update := obj.DeepCopy()
			update.SetResourceVersion(existing.GetResourceVersion())
			err = cluster.client.Update(t.Context(), update, client.DryRunAll)
		}
		g.Expect(err).NotTo(HaveOccurred(), "creating %s %s", obj.GetKind(), obj.GetName())
	}
	t.Logf("checked: all %d objects of config/default were accepted", len(objs))
}
