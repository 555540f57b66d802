package wirecheck

import (
	"reflect"
	"slices"
	"strings"
	"testing"

	capacityv1alpha1 "github.com/claudecap/claudecap/api/v1alpha1"
	"github.com/claudecap/claudecap/pkg/dimension"
	"github.com/claudecap/claudecap/pkg/loadtest"
	"github.com/claudecap/claudecap/pkg/mockapi"
	"github.com/claudecap/claudecap/pkg/ratelimit"
)

// jsonFields returns the JSON member names of a struct's fields in declaration order,
// descending into inlined (embedded, untagged or ",inline") structs as encoding/json does.
func jsonFields(t reflect.Type) []string {
	var names []string
	for i := range t.NumField() {
		f := t.Field(i)
		tag := f.Tag.Get("json")
		name, opts, _ := strings.Cut(tag, ",")
		if name == "-" || !f.IsExported() {
			continue
		}
		if f.Anonymous && (name == "" || opts == "inline") && f.Type.Kind() == reflect.Struct {
			names = append(names, jsonFields(f.Type)...)
			continue
		}
		if name == "" {
			name = f.Name
		}
		names = append(names, name)
	}
	return names
}

// tableNames are every dimension's name as field picks it, in table order.
func tableNames(field func(dimension.Info) string) []string {
	var names []string
	for _, d := range dimension.All() {
		names = append(names, field(d.Info()))
	}
	return names
}

func snakePerMinute(i dimension.Info) string { return i.Field + "_per_minute" }

func TestWireFormatsNameEveryDimension(t *testing.T) {
	limitFields := tableNames(dimension.LimitFieldOf)
	tests := []struct {
		name string
		wire any
		// others are the struct's members that are not per-dimension figures.
		others []string
		// partial structs also carry figures that are not limits (rates of other things);
		// for them only the presence of every dimension, in table order, is checked.
		partial bool
		want    []string
	}{
		{name: "api RateStatus (status limits, usage, budget, allocation)", wire: capacityv1alpha1.RateStatus{}, want: limitFields},
		{name: "api Limits (spec.limits)", wire: capacityv1alpha1.Limits{}, others: []string{"tier", "outputAccounting", "fromUpstream"}, want: limitFields},
		{name: "api ClassLimits (organization spec.limits.classes)", wire: capacityv1alpha1.ClassLimits{}, others: []string{"class"}, want: limitFields},
		{name: "ratelimit Limits (pool config JSON in Redis)", wire: ratelimit.Limits{}, want: limitFields},
		{name: "mockapi Limits (mock config)", wire: mockapi.Limits{}, want: tableNames(snakePerMinute)},
		{name: "mockapi Usage (mock statistics)", wire: mockapi.Usage{}, want: tableNames(func(i dimension.Info) string { return i.Field })},
		{name: "loadtest ReplicaEquivalent (report)", wire: loadtest.ReplicaEquivalent{}, others: []string{"meanConcurrency"}, want: limitFields},
		{name: "loadtest Throughput (report)", wire: loadtest.Throughput{}, partial: true, want: limitFields},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			all := jsonFields(reflect.TypeOf(tt.wire))
			var got []string
			for _, name := range all {
				if slices.Contains(tt.others, name) || (tt.partial && !slices.Contains(tt.want, name)) {
					continue
				}
				got = append(got, name)
			}
			if !slices.Equal(got, tt.want) {
				t.Errorf("per-dimension JSON fields %v (of %v), want the table's %v", got, all, tt.want)
			}
		})
	}
}
