package helm

import (
	"bytes"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	. "github.com/onsi/gomega"
	appsv1 "k8s.io/api/apps/v1"
	policyv1 "k8s.io/api/policy/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/intstr"
	"sigs.k8s.io/yaml"

	"github.com/claudecap/claudecap/pkg/capacity"
	"github.com/claudecap/claudecap/pkg/dimension"
)

// The release every render test uses, as in the install instructions.
const (
	release   = "claudecap"
	namespace = "claudecap-system"
)

func TestChartLints(t *testing.T) {
	for _, values := range [][]string{nil, {"--values", allFeaturesValues}} {
		out := helm(t, append([]string{"lint", "--strict", chartPath}, values...)...)
		if !bytes.Contains(out, []byte("0 chart(s) failed")) {
			t.Errorf("helm lint %v:\n%s", values, out)
		}
		t.Logf("checked: helm lint --strict %v", values)
	}
}

// TestBadValuesAreRefused makes sure a mistake in values stops `helm install` with a
// message that names the value, instead of installing a manager that misbehaves.
func TestBadValuesAreRefused(t *testing.T) {
	cases := []struct {
		name string
		set  string
		want string
	}{
		{"misspelled value", "metrics.enable=false", "additional properties 'enable' not allowed"},
		{"unknown pull policy", "image.pullPolicy=Sometimes", "/image/pullPolicy"},
		{"port out of range", "metrics.port=70000", "/metrics/port"},
		{"negative replicas", "replicaCount=-1", "/replicaCount"},
		{"unknown log level", "logLevel=loud", "/logLevel"},
		{"bad scrape interval", "serviceMonitor.interval=soon", "/serviceMonitor/interval"},
		{"catalog as a map", "catalog.asOf=2026", "/catalog"},
		{"replicas without leader election", "replicaCount=2,leaderElection.enabled=false", "replicaCount > 1 needs leaderElection.enabled=true"},
		{"monitor without metrics", "serviceMonitor.enabled=true,metrics.enabled=false", "serviceMonitor.enabled=true needs metrics.enabled=true"},
		{"metrics on the probe port", "metrics.port=8081", "metrics.port and healthProbePort must differ"},
		{"no service account", "serviceAccount.create=false", "serviceAccount.name is required"},
		{"digest without its algorithm", "image.digest=0123456789abcdef", "/image/digest"},
		{"monitor that cannot verify the self-signed certificate", "serviceMonitor.enabled=true", "without metrics.certSecret the manager serves a self-signed one"},
		{"certificate for plain HTTP", "metrics.certSecret=metrics-cert,metrics.secure=false", "metrics.certSecret needs metrics.enabled=true and metrics.secure=true"},
		{"CA from two places", "serviceMonitor.tlsConfig.ca.secret.name=a,serviceMonitor.tlsConfig.ca.secret.key=ca.crt," +
			"serviceMonitor.tlsConfig.ca.configMap.name=b,serviceMonitor.tlsConfig.ca.configMap.key=ca.crt", "/serviceMonitor/tlsConfig/ca"},
		{"budget that lets no pod go", "podDisruptionBudget.enabled=true,podDisruptionBudget.minAvailable=1", "lets no manager pod be evicted"},
		{"budget of no evictions", "podDisruptionBudget.enabled=true,podDisruptionBudget.maxUnavailable=0", "podDisruptionBudget.maxUnavailable=0"},
		{"budget as a fraction", "podDisruptionBudget.maxUnavailable=0.5", "/podDisruptionBudget/maxUnavailable"},
		{"redis without a port", "networkPolicy.redis[0].cidr=10.0.0.0/8", "/networkPolicy/redis/0"},
		{"redis by name", "networkPolicy.redis[0].cidr=redis.ai,networkPolicy.redis[0].port=6379", "/networkPolicy/redis/0/cidr"},
		{"no API server port", "networkPolicy.apiServer.ports={}", "/networkPolicy/apiServer/ports"},
		{"disabling an alert that does not exist", "prometheusRule.disabledAlerts={ClaudecapTypo}", "/prometheusRule/disabledAlerts/0"},
		{"severity among the extra alert labels", "prometheusRule.alertLabels.severity=page", "/prometheusRule/alertLabels"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			out, err := runTool(t.Context(), cluster.helm, "template", release, chartPath, "--set", tc.set)
			if err == nil {
				t.Fatalf("helm template --set %s succeeded, want an error containing %q; rendered:\n%.400s", tc.set, tc.want, out)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("helm template --set %s: error does not contain %q:\n%v", tc.set, tc.want, err)
			}
		})
	}
	t.Logf("checked: %d kinds of bad values are refused with a message naming the value", len(cases))
}

// TestRolesMatchConfig keeps the chart's roles equal to the kustomize ones; config/rbac/role.yaml
// is generated from the controller's +kubebuilder:rbac markers, so a controller that needs a
// new permission fails here until the chart grants it too.
func TestRolesMatchConfig(t *testing.T) {
	g := NewWithT(t)
	sources := map[string]string{
		"ClusterRole/claudecap-manager-role":               "config/rbac/role.yaml",
		"Role/claudecap-leader-election-role":              "config/rbac/leader_election_role.yaml",
		"ClusterRole/claudecap-metrics-auth-role":          "config/rbac/metrics_auth_role.yaml",
		"ClusterRole/claudecap-metrics-reader":             "config/rbac/metrics_reader_role.yaml",
		"ClusterRole/claudecap-claudecapacity-editor-role": "config/rbac/claudecapacity_editor_role.yaml",
		"ClusterRole/claudecap-claudecapacity-viewer-role": "config/rbac/claudecapacity_viewer_role.yaml",
	}
	objs := render(t, release, namespace)
	var rendered []string
	for _, obj := range slices.Concat(objs.ofKind("ClusterRole"), objs.ofKind("Role")) {
		key := obj.GetKind() + "/" + obj.GetName()
		rendered = append(rendered, key)
		source, ok := sources[key]
		if !ok {
			t.Errorf("the chart renders %s, which has no counterpart in config/rbac listed in this test", key)
			continue
		}
		want, err := readManifests(filepath.Join(cluster.root, source))
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(want).To(HaveLen(1), source)
		g.Expect(ruleSet(t, obj)).To(Equal(ruleSet(t, want[0])), "rules of %s differ from %s", key, source)
	}
	g.Expect(rendered).To(ConsistOf(slices.Collect(maps.Keys(sources))), "roles rendered with default values")
	t.Logf("checked: rules of %d chart roles equal config/rbac", len(rendered))
}

// rulesOf is ruleSet for a typed role.
func rulesOf(t *testing.T, role *rbacv1.ClusterRole) []rbacv1.PolicyRule {
	t.Helper()
	raw, err := runtime.DefaultUnstructuredConverter.ToUnstructured(role)
	if err != nil {
		t.Fatal(err)
	}
	return ruleSet(t, &unstructured.Unstructured{Object: raw})
}

// ruleSet returns a role's rules as one rule per API group and resource (or non-resource
// URL) with its verbs sorted, so that how a file groups or orders its rules does not matter.
func ruleSet(t *testing.T, role *unstructured.Unstructured) []rbacv1.PolicyRule {
	t.Helper()
	typed, err := decode[rbacv1.ClusterRole](role)
	if err != nil {
		t.Fatal(err)
	}
	verbs := map[string]map[string]bool{}
	add := func(key string, vs []string) {
		if verbs[key] == nil {
			verbs[key] = map[string]bool{}
		}
		for _, v := range vs {
			verbs[key][v] = true
		}
	}
	for _, r := range typed.Rules {
		for _, u := range r.NonResourceURLs {
			add("url\x00"+u+"\x00"+strings.Join(r.ResourceNames, ","), r.Verbs)
		}
		for _, g := range r.APIGroups {
			for _, res := range r.Resources {
				add(g+"\x00"+res+"\x00"+strings.Join(r.ResourceNames, ","), r.Verbs)
			}
		}
	}
	keys := slices.Sorted(maps.Keys(verbs))
	rules := make([]rbacv1.PolicyRule, 0, len(keys))
	for _, k := range keys {
		parts := strings.SplitN(k, "\x00", 3)
		rule := rbacv1.PolicyRule{Verbs: slices.Sorted(maps.Keys(verbs[k]))}
		if parts[0] == "url" {
			rule.NonResourceURLs = []string{parts[1]}
		} else {
			rule.APIGroups, rule.Resources = []string{parts[0]}, []string{parts[1]}
		}
		if parts[2] != "" {
			rule.ResourceNames = strings.Split(parts[2], ",")
		}
		rules = append(rules, rule)
	}
	return rules
}

// TestCRDsMatchConfig checks that charts/claudecap/crds is the copy `make manifests` makes
// of config/crd/bases, so Helm users get the CRD the controller was built against.
func TestCRDsMatchConfig(t *testing.T) {
	g := NewWithT(t)
	bases, err := filepath.Glob(filepath.Join(cluster.root, "config/crd/bases/*.yaml"))
	g.Expect(err).NotTo(HaveOccurred())
	copies, err := filepath.Glob(filepath.Join(cluster.root, chartPath, "crds/*.yaml"))
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(bases).NotTo(BeEmpty())
	g.Expect(mapBase(copies)).To(ConsistOf(mapBase(bases)), "run `make manifests` to refresh %s/crds", chartPath)
	for _, base := range bases {
		want, err := os.ReadFile(base)
		g.Expect(err).NotTo(HaveOccurred())
		got, err := os.ReadFile(filepath.Join(cluster.root, chartPath, "crds", filepath.Base(base)))
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(string(got)).To(Equal(string(want)), "%s/crds/%s is stale: run `make manifests`", chartPath, filepath.Base(base))
	}
	t.Logf("checked: %d CRD(s) in %s/crds equal config/crd/bases", len(bases), chartPath)
}

// TestDefaultValuesRender checks the manager the default values give: the kustomize
// manager's security settings and resources, leader election, HTTPS metrics, no catalog.
func TestDefaultValuesRender(t *testing.T) {
	g := NewWithT(t)
	objs := render(t, release, namespace)
	g.Expect(checkWiring(objs, namespace)).To(Succeed())

	pod, err := readManagerPod(objs)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(pod.container.Image).To(Equal("ghcr.io/claudecap/claudecap:" + chartAppVersion(t)))
	g.Expect(pod.flags).To(Equal(map[string]string{
		"--health-probe-bind-address": ":8081",
		"--operator-namespace":        namespace,
		"--metrics-bind-address":      ":8443",
		"--metrics-secure":            "true",
		"--leader-elect":              "",
		"--zap-log-level":             "info",
	}))
	for _, kind := range []string{"ServiceMonitor", "PrometheusRule", "ConfigMap", "NetworkPolicy", "PodDisruptionBudget"} {
		g.Expect(objs.ofKind(kind)).To(BeEmpty(), "%s objects with default values", kind)
	}
	g.Expect(pod.template.Spec.Volumes).To(BeEmpty())

	kustomize, err := readManifests(filepath.Join(cluster.root, "config/manager/manager.yaml"))
	g.Expect(err).NotTo(HaveOccurred())
	want, err := decodeOnly[appsv1.Deployment](kustomize, "Deployment")
	g.Expect(err).NotTo(HaveOccurred())
	wantPod, wantContainer := want.Spec.Template.Spec, want.Spec.Template.Spec.Containers[0]
	g.Expect(pod.template.Spec.SecurityContext).To(Equal(wantPod.SecurityContext), "pod securityContext vs config/manager")
	g.Expect(pod.container.SecurityContext).To(Equal(wantContainer.SecurityContext), "container securityContext vs config/manager")
	g.Expect(pod.container.Resources).To(Equal(wantContainer.Resources), "resources vs config/manager")
	g.Expect(pod.container.Command).To(Equal(wantContainer.Command), "command vs config/manager")
	t.Logf("checked: default render (%d objects) is wired together and matches config/manager", len(objs))
}

// TestAllFeaturesRender renders every optional feature and checks that each one reaches
// the manager: the catalog as a file it can parse, the ServiceMonitor on its Service.
func TestAllFeaturesRender(t *testing.T) {
	g := NewWithT(t)
	objs := render(t, release, namespace, "--values", allFeaturesValues)
	g.Expect(checkWiring(objs, namespace)).To(Succeed())

	pod, err := readManagerPod(objs)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(pod.container.Image).To(Equal("ghcr.io/claudecap/claudecap@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"),
		"image.digest pins the image, whatever the tag")
	g.Expect(pod.container.Args[len(pod.container.Args)-1]).To(Equal("--enable-http2"), "extraArgs come last")
	g.Expect(pod.flags).To(HaveKeyWithValue("--metrics-bind-address", ":9443"))
	g.Expect(pod.flags).To(HaveKeyWithValue("--zap-log-level", "debug"))
	g.Expect(pod.template.Annotations).To(HaveKey("checksum/catalog"), "pods roll when the catalog changes")

	monitor, err := objs.only("ServiceMonitor")
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(monitor.GetAPIVersion()).To(Equal("monitoring.coreos.com/v1"))
	g.Expect(monitor.GetLabels()).To(HaveKeyWithValue("release", "prometheus"))
	endpoints, _, _ := unstructured.NestedSlice(monitor.Object, "spec", "endpoints")
	g.Expect(endpoints).To(HaveLen(1))
	g.Expect(endpoints[0]).To(HaveKeyWithValue("tlsConfig", map[string]any{
		"insecureSkipVerify": false,
		"serverName":         "claudecap-controller-manager-metrics-service.claudecap-system.svc",
		"ca":                 map[string]any{"configMap": map[string]any{"name": "cluster-ca", "key": "ca.crt"}},
	}), "the scrape verifies the certificate against serviceMonitor.tlsConfig.ca")
	g.Expect(secretMountedAt(pod, metricsCertDir)).To(Equal("claudecap-metrics-cert"), "the manager serves metrics.certSecret")
	g.Expect(objs.ofKind("PrometheusRule")).To(HaveLen(1))
	g.Expect(objs.find("ConfigMap", "claudecap-dashboard")).NotTo(BeNil())
	pdb, err := decodeOnly[policyv1.PodDisruptionBudget](objs, "PodDisruptionBudget")
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(pdb.Spec.MinAvailable).To(Equal(ptrTo(intstr.FromInt32(1))))
	g.Expect(pdb.Spec.MaxUnavailable).To(BeNil(), "minAvailable replaces the default maxUnavailable")
	g.Expect(objs.ofKind("NetworkPolicy")).To(HaveLen(1))

	data, err := catalogData(objs, pod)
	g.Expect(err).NotTo(HaveOccurred())
	catalog, err := capacity.DefaultCatalog().Overlay([]byte(data))
	g.Expect(err).NotTo(HaveOccurred(), "the manager would refuse the mounted catalog")
	model, err := catalog.Model("claude-sonnet-4-9-test")
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(model.Class).To(Equal(capacity.ModelClass("sonnet-4")))
	limits, err := catalog.Limits("sonnet-4", "tier-2")
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(limits[dimension.Requests]).To(Equal(int64(1200)))
	t.Logf("checked: all-features render (%d objects) is wired together; the mounted catalog parses and overrides tier-2 Sonnet", len(objs))
}

// TestValueVariantsRender renders the switches one at a time, each of which removes or
// changes objects, and checks that what is left still fits together.
func TestValueVariantsRender(t *testing.T) {
	cases := []struct {
		set     string
		flags   map[string]string // manager flags the variant sets
		without string            // a manager flag the variant drops
		kind    string            // a kind of object the variant renders more or fewer of
		count   int               // how many objects of that kind it renders
	}{
		{"metrics.secure=false", map[string]string{"--metrics-secure": "false"}, "", "ClusterRoleBinding", 1},
		{"metrics.enabled=false", map[string]string{"--metrics-bind-address": "0"}, "--metrics-secure", "Service", 0},
		{"leaderElection.enabled=false", nil, "--leader-elect", "RoleBinding", 0},
		{"rbac.userRoles=false", nil, "", "ClusterRole", 3},
		{"serviceAccount.create=false,serviceAccount.name=platform-operators", nil, "", "ServiceAccount", 0},
		{"logLevel=4", map[string]string{"--zap-log-level": "4"}, "", "ConfigMap", 0},
		{"grafanaDashboard.enabled=true", nil, "--catalog", "ConfigMap", 1},
		{"prometheusRule.enabled=true", nil, "", "PrometheusRule", 1},
		{"podDisruptionBudget.enabled=true", nil, "", "PodDisruptionBudget", 1},
		{"networkPolicy.enabled=true", nil, "", "NetworkPolicy", 1},
		{"serviceMonitor.enabled=true,serviceMonitor.tlsConfig.insecureSkipVerify=true", nil, "", "ServiceMonitor", 1},
	}
	for _, tc := range cases {
		t.Run(tc.set, func(t *testing.T) {
			g := NewWithT(t)
			objs := render(t, release, namespace, "--set", tc.set)
			g.Expect(checkWiring(objs, namespace)).To(Succeed())
			pod, err := readManagerPod(objs)
			g.Expect(err).NotTo(HaveOccurred())
			for flag, value := range tc.flags {
				g.Expect(pod.flags).To(HaveKeyWithValue(flag, value))
			}
			if tc.without != "" {
				g.Expect(pod.flags).NotTo(HaveKey(tc.without))
			}
			g.Expect(objs.ofKind(tc.kind)).To(HaveLen(tc.count), "%s objects", tc.kind)
		})
	}
	t.Logf("checked: %d single-switch variants render wired together", len(cases))
}

// TestWiringCheckCatchesBreaks breaks a good render in the ways checkWiring exists to catch,
// so that a check that silently passes everything cannot go unnoticed.
func TestWiringCheckCatchesBreaks(t *testing.T) {
	cases := []struct {
		name   string
		want   string
		mutate func(objs manifests) manifests
	}{
		{"service selects other pods", "does not select the manager pods", func(objs manifests) manifests {
			setField(t, objs.find("Service", "claudecap-controller-manager-metrics-service"), "other", "spec", "selector", "control-plane")
			return objs
		}},
		{"leader election without its role", "--leader-elect needs update coordination.k8s.io/leases", func(objs manifests) manifests {
			return slices.DeleteFunc(objs, func(o *unstructured.Unstructured) bool { return o.GetKind() == "RoleBinding" })
		}},
		{"catalog flag to an unmounted file", "nothing is mounted at /etc/other/", func(objs manifests) manifests {
			dep := objs.find("Deployment", "claudecap-controller-manager")
			containers, _, _ := unstructured.NestedSlice(dep.Object, "spec", "template", "spec", "containers")
			manager := containers[0].(map[string]any)
			manager["args"] = append(manager["args"].([]any), "--catalog=/etc/other/catalog.yaml")
			setField(t, dep, containers, "spec", "template", "spec", "containers")
			return objs
		}},
		{"monitor on another port", "ServiceMonitor endpoints", func(objs manifests) manifests {
			monitor := objs.ofKind("ServiceMonitor")[0]
			setField(t, monitor, []any{map[string]any{"port": "http", "scheme": "https"}}, "spec", "endpoints")
			return objs
		}},
		{"monitor verifies a certificate the manager does not serve", "the manager serves a self-signed one", func(objs manifests) manifests {
			dep := objs.find("Deployment", "claudecap-controller-manager")
			unstructured.RemoveNestedField(dep.Object, "spec", "template", "spec", "volumes")
			return objs
		}},
		{"monitor checks the certificate for another name", "not a name of the Service", func(objs manifests) manifests {
			monitor := objs.ofKind("ServiceMonitor")[0]
			endpoints, _, _ := unstructured.NestedSlice(monitor.Object, "spec", "endpoints")
			tls := endpoints[0].(map[string]any)["tlsConfig"].(map[string]any)
			tls["serverName"] = "localhost"
			setField(t, monitor, endpoints, "spec", "endpoints")
			return objs
		}},
		{"disruption budget for other pods", "PodDisruptionBudget claudecap-controller-manager does not select", func(objs manifests) manifests {
			setField(t, objs.find("PodDisruptionBudget", "claudecap-controller-manager"), "other", "spec", "selector", "matchLabels", "control-plane")
			return objs
		}},
		{"network policy without the API server", "does not let the manager reach the API server", func(objs manifests) manifests {
			policy := objs.find("NetworkPolicy", "claudecap-controller-manager")
			egress, _, _ := unstructured.NestedSlice(policy.Object, "spec", "egress")
			setField(t, policy, egress[:1], "spec", "egress") // DNS only
			return objs
		}},
		{"network policy without DNS", "does not let the manager reach DNS", func(objs manifests) manifests {
			policy := objs.find("NetworkPolicy", "claudecap-controller-manager")
			egress, _, _ := unstructured.NestedSlice(policy.Object, "spec", "egress")
			setField(t, policy, egress[1:], "spec", "egress")
			return objs
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			objs := render(t, release, namespace, "--set", "serviceMonitor.enabled=true,metrics.certSecret=metrics-cert",
				"--set", "podDisruptionBudget.enabled=true,networkPolicy.enabled=true")
			err := checkWiring(tc.mutate(objs), namespace)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("checkWiring = %v, want an error containing %q", err, tc.want)
			}
		})
	}
}

func setField(t *testing.T, obj *unstructured.Unstructured, value any, fields ...string) {
	t.Helper()
	if err := unstructured.SetNestedField(obj.Object, value, fields...); err != nil {
		t.Fatalf("setting %v: %v", fields, err)
	}
}

func chartAppVersion(t *testing.T) string {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(cluster.root, chartPath, "Chart.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var chart struct {
		Version    string `json:"version"`
		AppVersion string `json:"appVersion"`
	}
	if err := yaml.Unmarshal(data, &chart); err != nil {
		t.Fatalf("Chart.yaml: %v", err)
	}
	if chart.AppVersion == "" || chart.AppVersion != chart.Version {
		t.Fatalf("Chart.yaml: appVersion %q should match version %q while both are released together", chart.AppVersion, chart.Version)
	}
	return chart.AppVersion
}

func mapBase(paths []string) []string {
	out := make([]string, 0, len(paths))
	for _, p := range paths {
		out = append(out, filepath.Base(p))
	}
	return out
}

// With watchNamespaces the manager's cache and RBAC are limited to those namespaces: a Role
// with the generated rules and a RoleBinding in each, no manager ClusterRole, and the flag
// that limits the cache.
func TestWatchNamespacesLimitTheManager(t *testing.T) {
	g := NewWithT(t)
	objs := render(t, release, namespace, "--set", "watchNamespaces={ai,batch}")
	g.Expect(checkWiring(objs, namespace)).To(Succeed())
	pod, err := readManagerPod(objs)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(pod.flags).To(HaveKeyWithValue("--watch-namespaces", "ai,batch"))
	want, err := readManifests(filepath.Join(cluster.root, "config/rbac/role.yaml"))
	g.Expect(err).NotTo(HaveOccurred())
	// The Roles in the watched namespaces and the ClusterRole for what is cluster-scoped grant,
	// together, exactly what the controllers' markers ask for.
	seen := map[string]bool{}
	var clusterScoped *unstructured.Unstructured
	for _, cr := range objs.ofKind("ClusterRole") {
		g.Expect(cr.GetName()).NotTo(Equal(release+"-manager-role"), "a cluster-wide manager role with watchNamespaces")
		if cr.GetName() == release+"-manager-cluster-role" {
			clusterScoped = cr
		}
	}
	g.Expect(clusterScoped).NotTo(BeNil(), "the cluster-scoped part of the manager's rules")
	for _, role := range objs.ofKind("Role") {
		if role.GetName() != release+"-manager-role" {
			continue
		}
		seen[role.GetNamespace()] = true
		namespaced, cluster := ruleSet(t, role), ruleSet(t, clusterScoped)
		for _, r := range cluster {
			g.Expect(r.Resources).NotTo(ContainElement("secrets"), "cluster-wide Secret access with watchNamespaces")
		}
		union := &rbacv1.ClusterRole{Rules: slices.Concat(namespaced, cluster)}
		g.Expect(rulesOf(t, union)).To(Equal(ruleSet(t, want[0])), "rules of the Role in %s with the cluster-scoped ones", role.GetNamespace())
	}
	g.Expect(seen).To(Equal(map[string]bool{"ai": true, "batch": true}))
	// The organization's limiter password is read in the release's namespace only.
	secretsRole := objs.find("Role", release+"-manager-secrets-role")
	g.Expect(secretsRole).NotTo(BeNil())
	g.Expect(secretsRole.GetNamespace()).To(Equal(namespace))
	g.Expect(pod.flags).To(HaveKeyWithValue("--operator-namespace", namespace))
}
