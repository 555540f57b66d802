package ratelimit

import (
	"os"
	"testing"
)

// TestMain lets the hammer test re-execute this test binary as separate
// client processes (see hammer_test.go).
func TestMain(m *testing.M) {
	if os.Getenv(hammerChildEnv) != "" {
		os.Exit(runHammerChild())
	}
	os.Exit(m.Run())
}
