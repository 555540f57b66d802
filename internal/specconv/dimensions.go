package specconv

import (
	"k8s.io/utils/ptr"

	capacityv1alpha1 "github.com/claudecap/claudecap/api/v1alpha1"
	"github.com/claudecap/claudecap/pkg/dimension"
)

// The API's per-dimension fields are CRD fields with a name each (the API package imports
// nothing of ours); these functions are the one place they meet dimension.Amounts, and a
// test checks their JSON names against the dimension table.

// RateStatus writes per-dimension amounts as the API's status figure.
func RateStatus(a dimension.Amounts) capacityv1alpha1.RateStatus {
	return capacityv1alpha1.RateStatus{
		RequestsPerMinute:     a[dimension.Requests],
		InputTokensPerMinute:  a[dimension.InputTokens],
		OutputTokensPerMinute: a[dimension.OutputTokens],
	}
}

// RateAmounts reads the API's status figure per dimension.
func RateAmounts(s capacityv1alpha1.RateStatus) dimension.Amounts {
	return dimension.Amounts{
		dimension.Requests:     s.RequestsPerMinute,
		dimension.InputTokens:  s.InputTokensPerMinute,
		dimension.OutputTokens: s.OutputTokensPerMinute,
	}
}

// LimitAmounts reads a ClaudeCapacity's explicit limits per dimension; a nil spec or a
// value left out reads 0.
func LimitAmounts(l *capacityv1alpha1.Limits) dimension.Amounts {
	if l == nil {
		return dimension.Amounts{}
	}
	return optionalAmounts(l.RequestsPerMinute, l.InputTokensPerMinute, l.OutputTokensPerMinute)
}

// ClassLimitAmounts reads an organization's explicit limits of a class per dimension; a
// value left out reads 0.
func ClassLimitAmounts(l capacityv1alpha1.ClassLimits) dimension.Amounts {
	return optionalAmounts(l.RequestsPerMinute, l.InputTokensPerMinute, l.OutputTokensPerMinute)
}

// optionalAmounts takes the optional fields in table order.
func optionalAmounts(values ...*int64) dimension.Amounts {
	var a dimension.Amounts
	for d := range a {
		a[d] = ptr.Deref(values[d], 0)
	}
	return a
}
