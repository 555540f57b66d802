package controllers

import (
	"bytes"
	"context"
	"net"
	"strings"
	"sync"
	"testing"

	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	capacityv1alpha1 "github.com/claudecap/claudecap/api/v1alpha1"
)

// authRecorder is a "Redis" run by an attacker: it keeps every byte a client sends and
// answers every command with an error.
type authRecorder struct {
	mu   sync.Mutex
	seen bytes.Buffer
	addr string
}

func startAuthRecorder(t *testing.T) *authRecorder {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ln.Close() })
	rec := &authRecorder{addr: ln.Addr().String()}
	go func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer func() { _ = conn.Close() }()
				buf := make([]byte, 4096)
				for {
					n, err := conn.Read(buf)
					if err != nil {
						return
					}
					rec.mu.Lock()
					rec.seen.Write(buf[:n])
					rec.mu.Unlock()
					_, _ = conn.Write([]byte("-ERR unknown command\r\n"))
				}
			}()
		}
	}()
	return rec
}

func (r *authRecorder) received(s string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return strings.Contains(r.seen.String(), s)
}

// Whoever may create a ClaudeCapacity must not be able to send a Secret of the namespace
// to a Redis address of their own: only Secrets labelled for this use are read as a
// Redis password.
func TestOnlyLabelledSecretsBecomeRedisPasswords(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	ns := newNamespace(t)
	const value = "TOP-SECRET-payments-db-password"
	secret := &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "payments-db"},
		Data:       map[string][]byte{"password": []byte(value)},
	}
	g.Expect(k8sClient.Create(ctx, secret)).To(Succeed())
	attacker := startAuthRecorder(t)
	g.Expect(k8sClient.Create(ctx, newDeployment(ns, "workers", 2))).To(Succeed())
	cc := queued(ns, "workers", attacker.addr, "jobs")
	cc.Spec.Queue.Redis.PasswordSecretRef = &capacityv1alpha1.SecretKeyRef{Name: "payments-db", Key: "password"}
	g.Expect(k8sClient.Create(ctx, cc)).To(Succeed())

	g.Eventually(func(g Gomega) {
		c := conditionOf(g, cc, capacityv1alpha1.ConditionSignalsAvailable)
		g.Expect(c.Status).To(Equal(metav1.ConditionFalse))
		g.Expect(c.Message).To(ContainSubstring("not labelled " + capacityv1alpha1.LabelRedisCredentials + "=true"))
		g.Expect(c.Message).NotTo(ContainSubstring(value))
	}, eventually).Should(Succeed())
	g.Consistently(func() bool { return attacker.received(value) }, "3s").Should(BeFalse(), "the Secret's value reached the attacker's server")
	g.Expect(specReplicas(g, ns, "workers")).To(Equal(int32(2)), "replicas are held while signals are unavailable")

	// Labelled for this use, the password is sent: the recorder would have seen it above.
	secret.Labels = map[string]string{capacityv1alpha1.LabelRedisCredentials: "true"}
	g.Expect(k8sClient.Update(ctx, secret)).To(Succeed())
	g.Eventually(func() bool { return attacker.received(value) }, eventually).Should(BeTrue())
}
