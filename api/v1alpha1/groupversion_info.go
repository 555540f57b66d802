// Package v1alpha1 contains the ClaudeCapacity and ClaudeOrganization API of the capacity.claudecap.io group.
// +kubebuilder:object:generate=true
// +groupName=capacity.claudecap.io
package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

var (
	// GroupVersion is the group and version used to register these objects.
	GroupVersion = schema.GroupVersion{Group: "capacity.claudecap.io", Version: "v1alpha1"}

	// SchemeBuilder adds the types of this group-version to a scheme.
	SchemeBuilder = runtime.NewSchemeBuilder(addKnownTypes)

	// AddToScheme adds the types of this group-version to the given scheme.
	AddToScheme = SchemeBuilder.AddToScheme
)

func addKnownTypes(scheme *runtime.Scheme) error {
	scheme.AddKnownTypes(GroupVersion, &ClaudeCapacity{}, &ClaudeCapacityList{},
		&ClaudeOrganization{}, &ClaudeOrganizationList{})
	metav1.AddToGroupVersion(scheme, GroupVersion)
	return nil
}
