package main

import (
	"maps"
	"slices"
	"testing"
)

func TestCacheOptionsLimitTheNamespaces(t *testing.T) {
	if got := cacheOptions("").DefaultNamespaces; got != nil {
		t.Errorf("no namespaces: %v, want every namespace (nil)", got)
	}
	got := slices.Sorted(maps.Keys(cacheOptions(" ai, batch ,,").DefaultNamespaces))
	if !slices.Equal(got, []string{"ai", "batch"}) {
		t.Errorf("namespaces %q, want [ai batch]", got)
	}
}
