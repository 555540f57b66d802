package redistest

import (
	"strings"
	"testing"
)

// A port taken by another test binary's server between the free-port probe and our
// bind must not pass for ours: that server answers PING, and sharing it mixes keys.
func TestLaunchRefusesAPortHeldByAnotherServer(t *testing.T) {
	held := Start(t)
	s := &Server{tb: t, binary: held.binary, dir: t.TempDir(), port: held.port}
	t.Cleanup(s.cleanup)
	err := s.launch()
	if err == nil || !strings.Contains(err.Error(), "held by another redis-server") {
		t.Fatalf("launch on %s = %v; want a refusal naming the other server", held.Addr(), err)
	}
}
