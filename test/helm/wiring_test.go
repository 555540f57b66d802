package helm

import (
	"errors"
	"fmt"
	"net"
	"path"
	"slices"
	"strconv"
	"strings"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
)

// The API server accepts each object on its own; these checks catch what it cannot: objects
// that do not point at each other (a Service selecting no pod, a flag naming a file nobody
// mounts, a binding to a role of another name), each of which leaves a manager that starts
// but does not work.

// managerPod is the manager's pod template and the parts of it the checks need.
type managerPod struct {
	template  corev1.PodTemplateSpec
	container corev1.Container
	flags     map[string]string // --name=value, or --name with value ""
	ports     map[string]int32  // container port name -> number
}

func readManagerPod(objs manifests) (*managerPod, error) {
	dep, err := decodeOnly[appsv1.Deployment](objs, "Deployment")
	if err != nil {
		return nil, err
	}
	selector, err := metav1.LabelSelectorAsSelector(dep.Spec.Selector)
	if err != nil {
		return nil, fmt.Errorf("deployment selector: %w", err)
	}
	if !selector.Matches(labels.Set(dep.Spec.Template.Labels)) {
		return nil, fmt.Errorf("deployment selector %s does not select its own pods %v", selector, dep.Spec.Template.Labels)
	}
	pod := &managerPod{template: dep.Spec.Template, flags: map[string]string{}, ports: map[string]int32{}}
	i := slices.IndexFunc(pod.template.Spec.Containers, func(c corev1.Container) bool { return c.Name == "manager" })
	if i < 0 {
		return nil, errors.New("deployment has no container named manager")
	}
	pod.container = pod.template.Spec.Containers[i]
	for _, arg := range pod.container.Args {
		name, value, _ := strings.Cut(arg, "=")
		pod.flags[name] = value
	}
	for _, p := range pod.container.Ports {
		pod.ports[p.Name] = p.ContainerPort
	}
	return pod, nil
}

// checkWiring returns every way in which the rendered objects do not fit together.
func checkWiring(objs manifests, namespace string) error {
	pod, err := readManagerPod(objs)
	if err != nil {
		return err
	}
	var problems []error
	// With --watch-namespaces the manager's Roles and RoleBindings live in those namespaces.
	watched := map[string]bool{}
	for _, ns := range strings.Split(pod.flags["--watch-namespaces"], ",") {
		watched[ns] = ns != ""
	}
	for _, obj := range objs {
		rbac := obj.GetKind() == "Role" || obj.GetKind() == "RoleBinding"
		if ns := obj.GetNamespace(); ns != "" && ns != namespace && (!rbac || !watched[ns]) {
			problems = append(problems, fmt.Errorf("%s %s is in namespace %s, not the release's %s", obj.GetKind(), obj.GetName(), ns, namespace))
		}
	}
	problems = append(problems, checkProbes(pod)...)
	problems = append(problems, checkPermissions(objs, pod, namespace)...)
	problems = append(problems, checkMetrics(objs, pod, namespace)...)
	problems = append(problems, checkPodPolicies(objs, pod)...)
	if _, err := catalogData(objs, pod); err != nil {
		problems = append(problems, err)
	}
	return errors.Join(problems...)
}

func checkProbes(pod *managerPod) []error {
	var problems []error
	_, port, err := net.SplitHostPort(pod.flags["--health-probe-bind-address"])
	if err != nil {
		return []error{fmt.Errorf("--health-probe-bind-address: %w", err)}
	}
	for name, probe := range map[string]*corev1.Probe{"liveness": pod.container.LivenessProbe, "readiness": pod.container.ReadinessProbe} {
		if probe == nil || probe.HTTPGet == nil {
			problems = append(problems, fmt.Errorf("no HTTP %s probe", name))
			continue
		}
		if got := strconv.Itoa(int(pod.ports[probe.HTTPGet.Port.String()])); got != port {
			problems = append(problems, fmt.Errorf("%s probe port %s is container port %s, the manager serves probes on %s",
				name, probe.HTTPGet.Port.String(), got, port))
		}
	}
	return problems
}

// checkPermissions follows the rendered bindings from the manager's ServiceAccount to the
// rules it needs for each flag it is started with.
func checkPermissions(objs manifests, pod *managerPod, namespace string) []error {
	sa := pod.template.Spec.ServiceAccountName
	var problems []error
	// With serviceAccount.create=false the user brings the ServiceAccount; else the chart must
	// create the one the manager runs as.
	if len(objs.ofKind("ServiceAccount")) > 0 && objs.find("ServiceAccount", sa) == nil {
		problems = append(problems, fmt.Errorf("the manager runs as ServiceAccount %s, which the chart does not create", sa))
	}
	type need struct{ group, resource, verb, why string }
	needs := []need{
		{"capacity.claudecap.io", "claudecapacities", "watch", "the controller"},
		{"capacity.claudecap.io", "claudecapacities/status", "patch", "the controller"},
		{"apps", "deployments/scale", "update", "the controller"},
	}
	if _, ok := pod.flags["--leader-elect"]; ok {
		needs = append(needs, need{"coordination.k8s.io", "leases", "update", "--leader-elect"})
	}
	if pod.flags["--metrics-bind-address"] != "0" && pod.flags["--metrics-secure"] == "true" {
		needs = append(needs, need{"authentication.k8s.io", "tokenreviews", "create", "--metrics-secure"})
	}
	for _, n := range needs {
		if !granted(objs, sa, namespace, n.group, n.resource, n.verb) {
			problems = append(problems, fmt.Errorf("%s needs %s %s/%s, which no rendered binding grants ServiceAccount %s",
				n.why, n.verb, n.group, n.resource, sa))
		}
	}
	return problems
}

// granted reports whether a rendered (Cluster)RoleBinding gives the ServiceAccount a
// rendered role with a rule that allows the verb on the resource.
func granted(objs manifests, sa, namespace, group, resource, verb string) bool {
	for _, kind := range []string{"ClusterRoleBinding", "RoleBinding"} {
		for _, obj := range objs.ofKind(kind) {
			binding, err := decode[rbacv1.RoleBinding](obj) // same shape as a ClusterRoleBinding
			if err != nil || !slices.ContainsFunc(binding.Subjects, func(s rbacv1.Subject) bool {
				return s.Kind == "ServiceAccount" && s.Name == sa && s.Namespace == namespace
			}) {
				continue
			}
			role := objs.find(binding.RoleRef.Kind, binding.RoleRef.Name)
			if role == nil {
				continue
			}
			rules, err := decode[rbacv1.ClusterRole](role) // a Role decodes the same way
			if err == nil && slices.ContainsFunc(rules.Rules, func(r rbacv1.PolicyRule) bool { return allows(r, group, resource, verb) }) {
				return true
			}
		}
	}
	return false
}

// allows reports whether a rule allows the verb on the resource, with RBAC's wildcards:
// "*" for any group, resource or verb, and "*/scale" for the scale subresource of anything.
func allows(rule rbacv1.PolicyRule, group, resource, verb string) bool {
	anyOr := func(values []string, want string) bool {
		return slices.Contains(values, "*") || slices.Contains(values, want)
	}
	resourceAllowed := anyOr(rule.Resources, resource) || slices.ContainsFunc(rule.Resources, func(r string) bool {
		sub, ok := strings.CutPrefix(r, "*/")
		return ok && strings.HasSuffix(resource, "/"+sub)
	})
	return anyOr(rule.APIGroups, group) && resourceAllowed && anyOr(rule.Verbs, verb)
}

// checkMetrics follows the metrics port from the flag to the container, the Service and
// the ServiceMonitor.
func checkMetrics(objs manifests, pod *managerPod, namespace string) []error {
	services := objs.ofKind("Service")
	if pod.flags["--metrics-bind-address"] == "0" {
		if len(services)+len(objs.ofKind("ServiceMonitor")) > 0 {
			return []error{errors.New("metrics are off but a metrics Service or ServiceMonitor is rendered")}
		}
		return nil
	}
	_, port, err := net.SplitHostPort(pod.flags["--metrics-bind-address"])
	if err != nil {
		return []error{fmt.Errorf("--metrics-bind-address: %w", err)}
	}
	if got := strconv.Itoa(int(pod.ports["metrics"])); got != port {
		return []error{fmt.Errorf("the manager serves metrics on %s but the container port named metrics is %s", port, got)}
	}
	svcObj, err := objs.only("Service")
	if err != nil {
		return []error{err}
	}
	svc, err := decode[corev1.Service](svcObj)
	if err != nil {
		return []error{err}
	}
	var problems []error
	if !labels.SelectorFromSet(svc.Spec.Selector).Matches(labels.Set(pod.template.Labels)) {
		problems = append(problems, fmt.Errorf("metrics Service selector %v does not select the manager pods", svc.Spec.Selector))
	}
	if len(svc.Spec.Ports) != 1 || svc.Spec.Ports[0].TargetPort.String() != "metrics" {
		return append(problems, fmt.Errorf("metrics Service ports %v: want one, targeting the port named metrics", svc.Spec.Ports))
	}
	wantScheme := map[string]string{"true": "https", "false": "http"}[pod.flags["--metrics-secure"]]
	if name := svc.Spec.Ports[0].Name; name != wantScheme {
		problems = append(problems, fmt.Errorf("metrics Service port is named %s, want %s for --metrics-secure=%s", name, wantScheme, pod.flags["--metrics-secure"]))
	}
	for _, monitor := range objs.ofKind("ServiceMonitor") {
		problems = append(problems, checkServiceMonitor(monitor.Object, svc, pod, namespace)...)
	}
	return problems
}

// metricsCertDir is where controller-runtime's metrics server reads tls.crt and tls.key
// (its CertDir default, under os.TempDir() of the manager's image, which sets no TMPDIR);
// without them it serves a self-signed certificate.
const metricsCertDir = "/tmp/k8s-metrics-server/serving-certs"

// checkServiceMonitor checks a monitoring.coreos.com/v1 ServiceMonitor, kept untyped so
// the test needs no Prometheus operator module.
func checkServiceMonitor(monitor map[string]any, svc *corev1.Service, pod *managerPod, namespace string) []error {
	var spec struct {
		Endpoints []struct {
			Port      string `json:"port"`
			Scheme    string `json:"scheme"`
			TLSConfig *struct {
				InsecureSkipVerify bool           `json:"insecureSkipVerify"`
				ServerName         string         `json:"serverName"`
				CA                 map[string]any `json:"ca"`
			} `json:"tlsConfig"`
		} `json:"endpoints"`
		NamespaceSelector struct {
			MatchNames []string `json:"matchNames"`
		} `json:"namespaceSelector"`
		Selector metav1.LabelSelector `json:"selector"`
	}
	specField, _ := monitor["spec"].(map[string]any)
	if err := runtime.DefaultUnstructuredConverter.FromUnstructured(specField, &spec); err != nil {
		return []error{fmt.Errorf("decoding the ServiceMonitor spec: %w", err)}
	}
	var problems []error
	selector, err := metav1.LabelSelectorAsSelector(&spec.Selector)
	if err != nil || !selector.Matches(labels.Set(svc.Labels)) {
		problems = append(problems, fmt.Errorf("ServiceMonitor selector %v does not select the metrics Service (labels %v)", spec.Selector, svc.Labels))
	}
	if !slices.Contains(spec.NamespaceSelector.MatchNames, namespace) {
		problems = append(problems, fmt.Errorf("ServiceMonitor looks in namespaces %v, not %s", spec.NamespaceSelector.MatchNames, namespace))
	}
	if len(spec.Endpoints) != 1 || spec.Endpoints[0].Port != svc.Spec.Ports[0].Name || spec.Endpoints[0].Scheme != svc.Spec.Ports[0].Name {
		problems = append(problems, fmt.Errorf("ServiceMonitor endpoints %+v: want one on Service port %s with that scheme", spec.Endpoints, svc.Spec.Ports[0].Name))
		return problems
	}
	// A verified scrape needs a certificate the manager serves, for a name of the Service.
	if tls := spec.Endpoints[0].TLSConfig; spec.Endpoints[0].Scheme == "https" && (tls == nil || !tls.InsecureSkipVerify) {
		if tls == nil || len(tls.CA) == 0 {
			problems = append(problems, errors.New("the ServiceMonitor verifies the metrics certificate but names no CA"))
		}
		names := []string{svc.Name + "." + namespace + ".svc", svc.Name + "." + namespace + ".svc.cluster.local"}
		if tls != nil && !slices.Contains(names, tls.ServerName) {
			problems = append(problems, fmt.Errorf("the ServiceMonitor checks the metrics certificate for %q, not a name of the Service (%v)", tls.ServerName, names))
		}
		if _, err := secretMountedAt(pod, metricsCertDir); err != nil {
			problems = append(problems, fmt.Errorf("the ServiceMonitor verifies the metrics certificate, but the manager serves a self-signed one: %w", err))
		}
	}
	return problems
}

// secretMountedAt returns the Secret the manager container has mounted at dir.
func secretMountedAt(pod *managerPod, dir string) (string, error) {
	i := slices.IndexFunc(pod.container.VolumeMounts, func(m corev1.VolumeMount) bool { return path.Clean(m.MountPath) == dir })
	if i < 0 {
		return "", fmt.Errorf("nothing is mounted at %s", dir)
	}
	name := pod.container.VolumeMounts[i].Name
	j := slices.IndexFunc(pod.template.Spec.Volumes, func(v corev1.Volume) bool { return v.Name == name })
	if j < 0 || pod.template.Spec.Volumes[j].Secret == nil {
		return "", fmt.Errorf("volume %s mounted at %s is not a Secret", name, dir)
	}
	return pod.template.Spec.Volumes[j].Secret.SecretName, nil
}

// checkPodPolicies checks the PodDisruptionBudget and the NetworkPolicy of the manager pods:
// they select them, and the NetworkPolicy still lets the manager reach DNS and the API server.
func checkPodPolicies(objs manifests, pod *managerPod) []error {
	var problems []error
	podLabels := labels.Set(pod.template.Labels)
	for _, obj := range objs.ofKind("PodDisruptionBudget") {
		pdb, err := decode[policyv1.PodDisruptionBudget](obj)
		if err != nil {
			return []error{err}
		}
		selector, err := metav1.LabelSelectorAsSelector(pdb.Spec.Selector)
		if err != nil || pdb.Spec.Selector == nil || !selector.Matches(podLabels) {
			problems = append(problems, fmt.Errorf("PodDisruptionBudget %s does not select the manager pods", pdb.Name))
		}
	}
	for _, obj := range objs.ofKind("NetworkPolicy") {
		policy, err := decode[networkingv1.NetworkPolicy](obj)
		if err != nil {
			return []error{err}
		}
		selector, err := metav1.LabelSelectorAsSelector(&policy.Spec.PodSelector)
		if err != nil || !selector.Matches(podLabels) {
			problems = append(problems, fmt.Errorf("NetworkPolicy %s does not select the manager pods", policy.Name))
			continue
		}
		if !slices.Contains(policy.Spec.PolicyTypes, networkingv1.PolicyTypeEgress) {
			continue
		}
		if !egressPortOpen(policy, corev1.ProtocolUDP, 53) || !egressPortOpen(policy, corev1.ProtocolTCP, 53) {
			problems = append(problems, fmt.Errorf("NetworkPolicy %s does not let the manager reach DNS (port 53, UDP and TCP)", policy.Name))
		}
		if !egressPortOpen(policy, corev1.ProtocolTCP, 443) && !egressPortOpen(policy, corev1.ProtocolTCP, 6443) {
			problems = append(problems, fmt.Errorf("NetworkPolicy %s does not let the manager reach the API server (TCP 443 or 6443)", policy.Name))
		}
	}
	return problems
}

// egressPortOpen reports whether an egress rule of the policy allows the port to some peer.
func egressPortOpen(policy *networkingv1.NetworkPolicy, protocol corev1.Protocol, port int32) bool {
	return slices.ContainsFunc(policy.Spec.Egress, func(rule networkingv1.NetworkPolicyEgressRule) bool {
		return portsAllow(rule.Ports, protocol, port)
	})
}

// portsAllow applies a rule's ports the way NetworkPolicy does: none means every port, a
// port without a number every port of its protocol (TCP when unset), endPort a range.
func portsAllow(ports []networkingv1.NetworkPolicyPort, protocol corev1.Protocol, port int32) bool {
	if len(ports) == 0 {
		return true
	}
	return slices.ContainsFunc(ports, func(p networkingv1.NetworkPolicyPort) bool {
		proto := corev1.ProtocolTCP
		if p.Protocol != nil {
			proto = *p.Protocol
		}
		if proto != protocol {
			return false
		}
		if p.Port == nil {
			return true
		}
		if p.EndPort != nil {
			return p.Port.IntVal <= port && port <= *p.EndPort
		}
		return p.Port.IntVal == port
	})
}

// catalogData follows --catalog to the volume mount, the volume and the ConfigMap key,
// and returns the catalog there; "" when the manager is not given a catalog.
func catalogData(objs manifests, pod *managerPod) (string, error) {
	file, ok := pod.flags["--catalog"]
	if !ok {
		for _, cm := range objs.ofKind("ConfigMap") {
			if !strings.HasSuffix(cm.GetName(), "-dashboard") { // the Grafana dashboard is Grafana's
				return "", fmt.Errorf("ConfigMap %s is rendered but the manager gets no --catalog", cm.GetName())
			}
		}
		return "", nil
	}
	dir, key := path.Split(file)
	i := slices.IndexFunc(pod.container.VolumeMounts, func(m corev1.VolumeMount) bool { return path.Clean(m.MountPath) == path.Clean(dir) })
	if i < 0 {
		return "", fmt.Errorf("--catalog=%s but nothing is mounted at %s", file, dir)
	}
	volumeName := pod.container.VolumeMounts[i].Name
	j := slices.IndexFunc(pod.template.Spec.Volumes, func(v corev1.Volume) bool { return v.Name == volumeName })
	if j < 0 || pod.template.Spec.Volumes[j].ConfigMap == nil {
		return "", fmt.Errorf("the catalog mount uses volume %s, which is not a ConfigMap volume", volumeName)
	}
	name := pod.template.Spec.Volumes[j].ConfigMap.Name
	obj := objs.find("ConfigMap", name)
	if obj == nil {
		return "", fmt.Errorf("the catalog volume mounts ConfigMap %s, which the chart does not render", name)
	}
	cm, err := decode[corev1.ConfigMap](obj)
	if err != nil {
		return "", err
	}
	data, ok := cm.Data[key]
	if !ok {
		return "", fmt.Errorf("--catalog=%s but ConfigMap %s has no key %s", file, name, key)
	}
	return data, nil
}
