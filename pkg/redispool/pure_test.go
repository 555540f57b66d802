package redispool

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

func TestConnectionValidate(t *testing.T) {
	tests := []struct {
		c       Connection
		wantErr string
	}{
		{Connection{Address: "redis:6379"}, ""},
		{Connection{Address: "[::1]:6379", Database: 15}, ""},
		{Connection{Address: "redis"}, "not host:port"},
		{Connection{Address: ":6379"}, "no host"},
		{Connection{Address: "redis:http"}, "no valid port"},
		{Connection{Address: "redis:0"}, "no valid port"},
		{Connection{Address: "redis:70000"}, "no valid port"},
		{Connection{Address: "redis:6379", Database: -1}, "negative"},
	}
	for _, tt := range tests {
		err := tt.c.validate()
		if tt.wantErr == "" && err != nil {
			t.Errorf("%v: unexpected error %v", tt.c, err)
		}
		if tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)) {
			t.Errorf("%v: error = %v, want one mentioning %q", tt.c, err, tt.wantErr)
		}
	}
}

func TestConnectionNeverFormatsThePassword(t *testing.T) {
	const secret = "s3cr3t-hunter2"
	c := Connection{Address: "redis:6379", Password: secret, TLS: true, Database: 2}
	for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%q"} {
		out := fmt.Sprintf(verb, c)
		if strings.Contains(out, secret) {
			t.Errorf("fmt %s printed the password: %s", verb, out)
		}
		if !strings.Contains(out, "redis:6379") {
			t.Errorf("fmt %s lost the address: %s", verb, out)
		}
	}
	if out := fmt.Sprintf("%v", &c); strings.Contains(out, secret) {
		t.Errorf("fmt %%v of a pointer printed the password: %s", out)
	}
}

func TestOptionsDefaults(t *testing.T) {
	got := Options{}.withDefaults()
	if got.PoolSize != DefaultPoolSize || got.Timeout != DefaultTimeout || got.IdleTimeout != DefaultIdleTimeout {
		t.Fatalf("defaults = %+v", got)
	}
	set := Options{PoolSize: 2, Timeout: time.Millisecond, IdleTimeout: time.Second}.withDefaults()
	if set.PoolSize != 2 || set.Timeout != time.Millisecond || set.IdleTimeout != time.Second {
		t.Fatalf("explicit options overwritten: %+v", set)
	}
}
