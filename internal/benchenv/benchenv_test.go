package benchenv

import (
	"os"
	"runtime"
	"strings"
	"testing"
)

func TestHostAndLoad(t *testing.T) {
	if h := Host(); !strings.Contains(h, runtime.GOOS+"/"+runtime.GOARCH) || !strings.Contains(h, runtime.Version()) {
		t.Errorf("Host() = %q", h)
	}
	load := LoadAverage()
	if _, err := os.Stat("/proc/loadavg"); err == nil && len(strings.Fields(load)) != 3 {
		t.Errorf("LoadAverage() = %q, want three fields", load)
	}
}
