package controllers

import (
	"context"
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	capacityv1alpha1 "github.com/claudecap/claudecap/api/v1alpha1"
	"github.com/claudecap/claudecap/pkg/queue"
)

// secretTTL is how long a credential read from a Secret is reused before the Secret is
// read again; rotating it takes effect within this time.
const secretTTL = 30 * time.Second

// secretCache holds credential values read from Secrets, and when each was read.
type secretCache map[secretKey]cachedSecret

type secretKey struct{ label, name, key string }

type cachedSecret struct {
	value string
	read  time.Time
}

// labelledSecrets reads credentials from the Secrets of one namespace that carry the label
// for their use set to "true"; other Secrets are never read for their value, so whoever may
// create a ClaudeCapacity cannot have any Secret sent to a server of their choosing. It
// implements queue.Credentials; errors name the Secret and the key, never a value.
type labelledSecrets struct {
	reader    client.Reader
	namespace string
	now       time.Time
	cache     *secretCache
}

// Value returns key of the Secret name if the Secret carries label=true.
func (s labelledSecrets) Value(ctx context.Context, label, name, key string) (string, bool, error) {
	k := secretKey{label: label, name: name, key: key}
	if cached, ok := (*s.cache)[k]; ok && s.now.Sub(cached.read) < secretTTL {
		return cached.value, true, nil
	}
	secret := &corev1.Secret{}
	if err := s.reader.Get(ctx, client.ObjectKey{Namespace: s.namespace, Name: name}, secret); err != nil {
		return "", false, fmt.Errorf("%w: reading Secret %s/%s: %w", queue.ErrCredentials, s.namespace, name, err)
	}
	if secret.Labels[label] != "true" {
		return "", false, fmt.Errorf("%w: secret %s/%s is not labelled %s=true; only Secrets labelled for this use give credentials",
			queue.ErrCredentials, s.namespace, name, label)
	}
	value, ok := secret.Data[key]
	if !ok {
		return "", false, nil
	}
	if *s.cache == nil {
		*s.cache = secretCache{}
	}
	(*s.cache)[k] = cachedSecret{value: string(value), read: s.now}
	return string(value), true, nil
}

// redisPassword reads a Redis password (a limiter's) from a Secret labelled
// capacityv1alpha1.LabelRedisCredentials; "" without a ref.
func (s labelledSecrets) redisPassword(ctx context.Context, ref *capacityv1alpha1.SecretKeyRef) (string, error) {
	if ref == nil {
		return "", nil
	}
	value, found, err := s.Value(ctx, capacityv1alpha1.LabelRedisCredentials, ref.Name, ref.Key)
	if err != nil {
		return "", fmt.Errorf("reading the Redis password: %w", err)
	}
	if !found {
		return "", fmt.Errorf("secret %s/%s has no key %q for the Redis password", s.namespace, ref.Name, ref.Key)
	}
	return value, nil
}

// secretsIn reads labelled Secrets of namespace through the API reader, caching in w.
func (r *ClaudeCapacityReconciler) secretsIn(namespace string, w *workloadMemory) labelledSecrets {
	return labelledSecrets{reader: r.APIReader, namespace: namespace, now: r.now(), cache: &w.secrets}
}
