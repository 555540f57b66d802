package controllers

import (
	"strings"
	"sync"
	"time"

	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/discovery"
)

// scalableTTL is how long the kinds of one group/version are trusted before discovery is
// asked again (a CRD gaining a /scale subresource is picked up within it).
const scalableTTL = 5 * time.Minute

// scalableKinds tells, from the API server's discovery, whether a kind exists and has a
// /scale subresource. The controller reads only kinds that have one: reading any object
// named in a ClaudeCapacity would tell whoever may create one whether, say, a Secret of
// that name exists.
type scalableKinds struct {
	disc discovery.DiscoveryInterface
	now  func() time.Time

	mu   sync.Mutex
	byGV map[schema.GroupVersion]gvKinds
}

type gvKinds struct {
	scalable map[string]bool // kind -> has /scale
	at       time.Time
}

func newScalableKinds(disc discovery.DiscoveryInterface, now func() time.Time) *scalableKinds {
	return &scalableKinds{disc: disc, now: now, byGV: map[schema.GroupVersion]gvKinds{}}
}

// lookup reports whether gv serves kind and whether it has /scale. An error (the group
// version is not served, discovery failed) leaves the answer to the /scale read itself.
func (s *scalableKinds) lookup(gv schema.GroupVersion, kind string) (known, scalable bool, err error) {
	s.mu.Lock()
	entry, ok := s.byGV[gv]
	s.mu.Unlock()
	if !ok || s.now().Sub(entry.at) > scalableTTL {
		list, err := s.disc.ServerResourcesForGroupVersion(gv.String())
		if err != nil {
			return false, false, err
		}
		entry = gvKinds{scalable: map[string]bool{}, at: s.now()}
		kindOf := map[string]string{} // resource -> kind
		for _, r := range list.APIResources {
			if !strings.Contains(r.Name, "/") {
				kindOf[r.Name] = r.Kind
				if _, seen := entry.scalable[r.Kind]; !seen {
					entry.scalable[r.Kind] = false
				}
			}
		}
		for _, r := range list.APIResources {
			if base, ok := strings.CutSuffix(r.Name, "/scale"); ok && kindOf[base] != "" {
				entry.scalable[kindOf[base]] = true
			}
		}
		s.mu.Lock()
		s.byGV[gv] = entry
		s.mu.Unlock()
	}
	scalable, known = entry.scalable[kind]
	return known, scalable, nil
}
