package queue

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"

	capacityv1alpha1 "github.com/claudecap/claudecap/api/v1alpha1"
	"github.com/claudecap/claudecap/pkg/redispool"
)

// secretValues is what the controller's labelled Secrets would hand out: values by
// label, Secret and key, and every read, so a test can tell which Secrets were read.
type secretValues struct {
	values map[[3]string]string
	reads  []string
}

func (s *secretValues) Value(_ context.Context, label, name, key string) (string, bool, error) {
	s.reads = append(s.reads, name+"/"+key)
	v, ok := s.values[[3]string{label, name, key}]
	return v, ok, nil
}

// everyKey has a value for every key of every Secret.
type everyKey struct{}

func (everyKey) Value(context.Context, string, string, string) (string, bool, error) {
	return "x", true, nil
}

func sqsSpec() *capacityv1alpha1.SQSQueue {
	return &capacityv1alpha1.SQSQueue{QueueURL: "https://sqs.eu-west-1.amazonaws.com/1/jobs", Region: "eu-west-1",
		CredentialsSecretRef: capacityv1alpha1.SecretRef{Name: "aws"}}
}

func TestResolveRedisReadsItsPasswordUnderTheRedisLabel(t *testing.T) {
	creds := &secretValues{values: map[[3]string]string{
		{capacityv1alpha1.LabelRedisCredentials, "redis", "password"}: "pw",
	}}
	spec := &capacityv1alpha1.Queue{Redis: &capacityv1alpha1.RedisQueue{
		RedisConnection: capacityv1alpha1.RedisConnection{Address: "redis:6379", Database: 2, TLS: true,
			PasswordSecretRef: &capacityv1alpha1.SecretKeyRef{Name: "redis", Key: "password"}},
		Stream: "jobs", ConsumerGroup: "workers"}}
	got, err := Resolve(context.Background(), spec, creds)
	want := RedisSettings{Connection: redispool.Connection{Address: "redis:6379", Password: "pw", TLS: true, Database: 2},
		Queue: RedisQueue{Stream: "jobs", ConsumerGroup: "workers"}}
	if err != nil || got != want {
		t.Fatalf("Resolve = %#v, %v; want %#v", got, err, want)
	}
	if s := got.String(); s != `stream "jobs" group "workers" on redis:6379` {
		t.Fatalf("String = %q", s)
	}

	spec.Redis.PasswordSecretRef.Key = "other"
	if _, err := Resolve(context.Background(), spec, creds); !errors.Is(err, ErrCredentials) || !strings.Contains(err.Error(), `no key "other"`) {
		t.Fatalf("missing key: %v, want ErrCredentials naming the key", err)
	}
}

func TestResolveSQSReadsItsCredentialsUnderTheSQSLabel(t *testing.T) {
	label := capacityv1alpha1.LabelSQSCredentials
	creds := &secretValues{values: map[[3]string]string{
		{label, "aws", capacityv1alpha1.SQSAccessKeyIDKey}:     "AKID",
		{label, "aws", capacityv1alpha1.SQSSecretAccessKeyKey}: "secret",
	}}
	spec := &capacityv1alpha1.Queue{SQS: sqsSpec()}
	got, err := Resolve(context.Background(), spec, creds)
	want := SQSSettings{QueueURL: spec.SQS.QueueURL, Region: "eu-west-1", AccessKeyID: "AKID", SecretAccessKey: "secret"}
	if err != nil || got != want {
		t.Fatalf("Resolve = %#v, %v; want %#v (the session token is optional)", got, err, want)
	}

	creds.values[[3]string{label, "aws", capacityv1alpha1.SQSSessionTokenKey}] = "token"
	if got, err := Resolve(context.Background(), spec, creds); err != nil || got.(SQSSettings).SessionToken != "token" {
		t.Fatalf("with a session token: %#v, %v", got, err)
	}

	delete(creds.values, [3]string{label, "aws", capacityv1alpha1.SQSSecretAccessKeyKey})
	_, err = Resolve(context.Background(), spec, creds)
	if !errors.Is(err, ErrCredentials) || !strings.Contains(err.Error(), "queue.sqs") ||
		!strings.Contains(err.Error(), capacityv1alpha1.SQSSecretAccessKeyKey) {
		t.Fatalf("missing secret key: %v, want ErrCredentials naming queue.sqs and the key", err)
	}
}

func TestResolveRefusesNoSourceAndTwoSourcesWithoutReadingSecrets(t *testing.T) {
	creds := &secretValues{}
	_, err := Resolve(context.Background(), &capacityv1alpha1.Queue{}, creds)
	if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), "queue.redis or queue.sqs") {
		t.Fatalf("no source: %v, want ErrInvalid listing the sources", err)
	}
	both := &capacityv1alpha1.Queue{SQS: sqsSpec(), Redis: &capacityv1alpha1.RedisQueue{
		RedisConnection: capacityv1alpha1.RedisConnection{Address: "redis:6379",
			PasswordSecretRef: &capacityv1alpha1.SecretKeyRef{Name: "redis", Key: "password"}}, List: "jobs"}}
	_, err = Resolve(context.Background(), both, creds)
	if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), "queue.redis and queue.sqs") {
		t.Fatalf("two sources: %v, want ErrInvalid naming both", err)
	}
	if len(creds.reads) != 0 {
		t.Fatalf("an invalid queue read Secrets: %v", creds.reads)
	}
}

// The controller compares settings with != to decide whether to reopen a source; a
// settings type that is not comparable would panic there.
func TestEverySourcesSettingsAreComparable(t *testing.T) {
	for _, k := range kinds {
		t.Run(k.field, func(t *testing.T) {
			spec := specSetting(t, k.field)
			if !k.set(spec) {
				t.Fatalf("set(%s) is false for a spec that sets it", k.field)
			}
			for _, other := range kinds {
				if other.field != k.field && other.set(spec) {
					t.Fatalf("set(%s) is true for a spec that sets only %s", other.field, k.field)
				}
			}
			s, err := k.resolve(context.Background(), spec, everyKey{})
			if err != nil {
				t.Fatalf("resolve: %v", err)
			}
			if !reflect.TypeOf(s).Comparable() {
				t.Fatalf("%T is not comparable", s)
			}
		})
	}
}

// specSetting is a queue spec that sets only the named source's field, found by its JSON
// name, so a new source is covered without editing this test.
func specSetting(t *testing.T, field string) *capacityv1alpha1.Queue {
	t.Helper()
	spec := &capacityv1alpha1.Queue{}
	v := reflect.ValueOf(spec).Elem()
	for i := range v.NumField() {
		if strings.Split(v.Type().Field(i).Tag.Get("json"), ",")[0] == field {
			f := v.Field(i)
			f.Set(reflect.New(f.Type().Elem()))
			return spec
		}
	}
	t.Fatalf("capacityv1alpha1.Queue has no field %q", field)
	return nil
}

func TestFieldsAreTheRegisteredSources(t *testing.T) {
	if got := fmt.Sprint(Fields()); got != "[redis sqs]" {
		t.Fatalf("Fields = %s", got)
	}
}
