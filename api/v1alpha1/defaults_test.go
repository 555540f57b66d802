package v1alpha1

import (
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
	"time"

	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	"sigs.k8s.io/yaml"
)

// The getters' defaults must be the ones the CRD applies on the API server, or a manifest
// planned from a file and the same object in the cluster would differ.
func TestDefaultsMatchTheCRD(t *testing.T) {
	for _, tc := range []struct {
		crd  string
		path []string
		want int32
	}{
		{"claudecapacities", []string{"spec", "headroomPercent"}, DefaultHeadroomPercent},
		{"claudecapacities", []string{"spec", "pollIntervalSeconds"}, DefaultPollIntervalSeconds},
		{"claudecapacities", []string{"spec", "weight"}, DefaultWeight},
		{"claudecapacities", []string{"spec", "queue", "targetDrainSeconds"}, DefaultTargetDrainSeconds},
		{"claudeorganizations", []string{"spec", "headroomPercent"}, DefaultHeadroomPercent},
	} {
		raw, err := os.ReadFile(filepath.Join("..", "..", "config", "crd", "bases", "capacity.claudecap.io_"+tc.crd+".yaml"))
		if err != nil {
			t.Fatal(err)
		}
		var crd apiextensionsv1.CustomResourceDefinition
		if err := yaml.Unmarshal(raw, &crd); err != nil {
			t.Fatal(err)
		}
		schema := crd.Spec.Versions[0].Schema.OpenAPIV3Schema
		for _, p := range tc.path {
			next, ok := schema.Properties[p]
			if !ok {
				t.Fatalf("%s: no property %v", tc.crd, tc.path)
			}
			schema = &next
		}
		var got int32
		if schema.Default == nil || json.Unmarshal(schema.Default.Raw, &got) != nil || got != tc.want {
			t.Errorf("%s %v: the CRD defaults to %v, the getters to %d", tc.crd, tc.path, schema.Default, tc.want)
		}
	}
}

func TestGettersApplyDefaultsOnlyToUnsetFields(t *testing.T) {
	var unset ClaudeCapacitySpec
	if unset.HeadroomPercentOrDefault() != 90 || unset.PollInterval() != 2*time.Second || unset.WeightOrDefault() != 1 ||
		unset.TargetDrain() != 120*time.Second {
		t.Errorf("defaults: %d %s %d %s", unset.HeadroomPercentOrDefault(), unset.PollInterval(), unset.WeightOrDefault(), unset.TargetDrain())
	}
	set := ClaudeCapacitySpec{HeadroomPercent: 40, PollIntervalSeconds: 7, Weight: 3, Queue: &Queue{TargetDrainSeconds: 30}}
	if set.HeadroomPercentOrDefault() != 40 || set.PollInterval() != 7*time.Second || set.WeightOrDefault() != 3 ||
		set.TargetDrain() != 30*time.Second {
		t.Errorf("set values: %d %s %d %s", set.HeadroomPercentOrDefault(), set.PollInterval(), set.WeightOrDefault(), set.TargetDrain())
	}
	if (&ClaudeOrganizationSpec{}).HeadroomPercentOrDefault() != 90 || (&ClaudeOrganizationSpec{HeadroomPercent: 55}).HeadroomPercentOrDefault() != 55 {
		t.Error("organization headroom")
	}
}
