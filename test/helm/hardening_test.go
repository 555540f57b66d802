package helm

import (
	"net/netip"
	"slices"
	"testing"

	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/util/intstr"
)

// egressAllows reports whether the policy lets a pod it selects connect to ip:port, as a
// NetworkPolicy implementation decides for a destination outside the cluster's pods: a rule
// allows it when its ports allow the port and one of its peers (none: any) is an ipBlock
// holding the address outside its exceptions. Pod and namespace selectors never match an
// address here, since they stand for pods, not for the servers named in values.
func egressAllows(t *testing.T, policy *networkingv1.NetworkPolicy, ip string, protocol corev1.Protocol, port int32) bool {
	t.Helper()
	addr := netip.MustParseAddr(ip)
	inBlock := func(cidr string) bool {
		prefix, err := netip.ParsePrefix(cidr)
		if err != nil {
			t.Fatalf("NetworkPolicy %s: %v", policy.Name, err)
		}
		return prefix.Contains(addr)
	}
	return slices.ContainsFunc(policy.Spec.Egress, func(rule networkingv1.NetworkPolicyEgressRule) bool {
		if !portsAllow(rule.Ports, protocol, port) {
			return false
		}
		if len(rule.To) == 0 {
			return true
		}
		return slices.ContainsFunc(rule.To, func(peer networkingv1.NetworkPolicyPeer) bool {
			return peer.IPBlock != nil && inBlock(peer.IPBlock.CIDR) && !slices.ContainsFunc(peer.IPBlock.Except, inBlock)
		})
	})
}

// TestNetworkPolicyLimitsEgress renders the NetworkPolicy with the defaults and with the
// all-features values, and asks it where the manager may connect: the API server, DNS and
// the Redis servers named in values, and nowhere else.
func TestNetworkPolicyLimitsEgress(t *testing.T) {
	const tcp, udp = corev1.ProtocolTCP, corev1.ProtocolUDP
	type dest struct {
		why      string
		ip       string
		protocol corev1.Protocol
		port     int32
		allowed  bool
	}
	cases := []struct {
		name  string
		flags []string
		dests []dest
	}{
		{"defaults", []string{"--set", "networkPolicy.enabled=true"}, []dest{
			{"the API server's Service port, any address", "10.96.0.1", tcp, 443, true},
			{"the API server's usual endpoint port", "172.18.0.2", tcp, 6443, true},
			{"DNS over UDP, any server", "10.96.0.10", udp, 53, true},
			{"DNS over TCP", "10.96.0.10", tcp, 53, true},
			{"Redis, not listed", "10.20.0.5", tcp, 6379, false},
			{"plain HTTP", "203.0.113.7", tcp, 80, false},
			{"the API server port over UDP", "10.96.0.1", udp, 443, false},
		}},
		{"all features", []string{"--values", allFeaturesValues}, []dest{
			{"the listed API server", "172.18.0.2", tcp, 6443, true},
			{"another address on the API server port", "172.18.0.3", tcp, 6443, false},
			{"443, not a listed API server port", "172.18.0.2", tcp, 443, false},
			{"DNS to an address, not kube-dns", "8.8.8.8", udp, 53, false},
			{"the first Redis range", "10.20.7.9", tcp, 6379, true},
			{"the first Redis range, another port", "10.20.7.9", tcp, 6380, false},
			{"the second Redis server", "10.30.1.5", tcp, 6380, true},
			{"next to the second Redis server", "10.30.1.6", tcp, 6380, false},
			{"extraEgress", "10.40.0.9", tcp, 26379, true},
			{"anything else", "203.0.113.7", tcp, 443, false},
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			g := NewWithT(t)
			objs := render(t, release, namespace, tc.flags...)
			g.Expect(checkWiring(objs, namespace)).To(Succeed())
			policy, err := decodeOnly[networkingv1.NetworkPolicy](objs, "NetworkPolicy")
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(policy.Spec.PolicyTypes).To(Equal([]networkingv1.PolicyType{networkingv1.PolicyTypeEgress}),
				"egress only: Prometheus and the kubelet still reach the pods")
			for _, d := range tc.dests {
				g.Expect(egressAllows(t, policy, d.ip, d.protocol, d.port)).To(Equal(d.allowed), "%s: %s %s:%d", d.why, d.protocol, d.ip, d.port)
			}
		})
	}
	// The all-features DNS rule names kube-dns by selectors, which egressAllows does not match
	// to addresses; check the peer itself.
	objs := render(t, release, namespace, "--values", allFeaturesValues)
	policy, err := decodeOnly[networkingv1.NetworkPolicy](objs, "NetworkPolicy")
	if err != nil {
		t.Fatal(err)
	}
	dns := policy.Spec.Egress[0]
	if !portsAllow(dns.Ports, corev1.ProtocolUDP, 53) || len(dns.To) != 1 || dns.To[0].PodSelector == nil ||
		dns.To[0].PodSelector.MatchLabels["k8s-app"] != "kube-dns" {
		t.Errorf("the DNS rule of networkPolicy.dns.to: %+v", dns)
	}
}

// TestPodDisruptionBudgetVariants renders the budget's forms: the default maxUnavailable,
// an integer minAvailable, and percentages, each kept as the API expects it.
func TestPodDisruptionBudgetVariants(t *testing.T) {
	cases := []struct {
		set            string
		minAvailable   *intstr.IntOrString
		maxUnavailable *intstr.IntOrString
	}{
		{"podDisruptionBudget.enabled=true", nil, ptrTo(intstr.FromInt32(1))},
		{"podDisruptionBudget.enabled=true,replicaCount=3,podDisruptionBudget.minAvailable=2", ptrTo(intstr.FromInt32(2)), nil},
		{"podDisruptionBudget.enabled=true,replicaCount=4,podDisruptionBudget.minAvailable=50%", ptrTo(intstr.FromString("50%")), nil},
		{"podDisruptionBudget.enabled=true,podDisruptionBudget.maxUnavailable=25%", nil, ptrTo(intstr.FromString("25%"))},
	}
	for _, tc := range cases {
		t.Run(tc.set, func(t *testing.T) {
			g := NewWithT(t)
			objs := render(t, release, namespace, "--set", tc.set)
			g.Expect(checkWiring(objs, namespace)).To(Succeed())
			pdb, err := decodeOnly[policyv1.PodDisruptionBudget](objs, "PodDisruptionBudget")
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(pdb.Spec.MinAvailable).To(Equal(tc.minAvailable))
			g.Expect(pdb.Spec.MaxUnavailable).To(Equal(tc.maxUnavailable))
		})
	}
}

func ptrTo[T any](v T) *T { return &v }

// TestServiceMonitorTLS renders the ServiceMonitor's two TLS modes: verified by default
// (the CA from metrics.certSecret's ca.crt, the Service's name), or, when a value says so,
// unverified against the manager's self-signed certificate.
func TestServiceMonitorTLS(t *testing.T) {
	g := NewWithT(t)
	tlsConfig := func(objs manifests) map[string]any {
		monitor, err := objs.only("ServiceMonitor")
		g.Expect(err).NotTo(HaveOccurred())
		endpoints, _, _ := unstructured.NestedSlice(monitor.Object, "spec", "endpoints")
		g.Expect(endpoints).To(HaveLen(1))
		g.Expect(endpoints[0]).To(HaveKeyWithValue("honorLabels", true), "the manager's namespace and name labels are kept")
		tls, _ := endpoints[0].(map[string]any)["tlsConfig"].(map[string]any)
		return tls
	}

	objs := render(t, release, namespace, "--set", "serviceMonitor.enabled=true,metrics.certSecret=metrics-cert")
	g.Expect(checkWiring(objs, namespace)).To(Succeed())
	g.Expect(tlsConfig(objs)).To(Equal(map[string]any{
		"insecureSkipVerify": false,
		"serverName":         "claudecap-controller-manager-metrics-service.claudecap-system.svc",
		"ca":                 map[string]any{"secret": map[string]any{"name": "metrics-cert", "key": "ca.crt"}},
	}))
	pod, err := readManagerPod(objs)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(secretMountedAt(pod, metricsCertDir)).To(Equal("metrics-cert"))

	objs = render(t, release, namespace, "--set", "serviceMonitor.enabled=true,serviceMonitor.tlsConfig.insecureSkipVerify=true")
	g.Expect(checkWiring(objs, namespace)).To(Succeed())
	g.Expect(tlsConfig(objs)).To(Equal(map[string]any{"insecureSkipVerify": true}))
	pod, err = readManagerPod(objs)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(pod.template.Spec.Volumes).To(BeEmpty(), "no certificate: the manager makes its own")

	objs = render(t, release, namespace, "--set", "serviceMonitor.enabled=true,metrics.certSecret=metrics-cert,serviceMonitor.tlsConfig.serverName=metrics.claudecap-system.svc.cluster.local")
	err = checkWiring(objs, namespace)
	g.Expect(err).To(MatchError(ContainSubstring("not a name of the Service")), "a serverName the Service does not have is caught")
}
