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

func TestMarkdownTableAndReport(t *testing.T) {
	got := MarkdownTable([]string{"row", "429s"}, [][]string{{"a", "0"}, {"b", "3"}})
	if want := "| row | 429s |\n|---|---|\n| a | 0 |\n| b | 3 |\n"; got != want {
		t.Errorf("table %q, want %q", got, want)
	}
	dir := t.TempDir()
	if err := WriteReport(dir, []byte(got), map[string]int{"rows": 2}); err != nil {
		t.Fatal(err)
	}
	md, err1 := os.ReadFile(dir + "/report.md")
	js, err2 := os.ReadFile(dir + "/report.json")
	if err1 != nil || err2 != nil || string(md) != got || string(js) != "{\n  \"rows\": 2\n}\n" {
		t.Errorf("report.md %q (%v), report.json %q (%v)", md, err1, js, err2)
	}
}
