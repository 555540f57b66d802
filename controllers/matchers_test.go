package controllers

import (
	"fmt"

	"github.com/onsi/gomega/types"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	. "github.com/onsi/gomega"
)

// HaveCondition matches a list of conditions that holds the condition of the given type with
// the given status and reason, as cluster-api's condition matchers do:
//
//	g.Expect(cc.Status.Conditions).To(HaveCondition(ConditionReady, metav1.ConditionFalse, ReasonTargetNotFound))
func HaveCondition(condType string, status metav1.ConditionStatus, reason string) types.GomegaMatcher {
	return WithTransform(func(conds []metav1.Condition) string {
		c := meta.FindStatusCondition(conds, condType)
		if c == nil {
			return fmt.Sprintf("no %s condition", condType)
		}
		return fmt.Sprintf("%s=%s (%s)", c.Type, c.Status, c.Reason)
	}, Equal(fmt.Sprintf("%s=%s (%s)", condType, status, reason)))
}
