package dimension

import (
	"strings"
	"testing"
)

// MarshalObject lays per-dimension values out as a struct with a field per dimension would:
// members in table order, omitempty when asked.
func TestMarshalObjectIsAStructsLayout(t *testing.T) {
	got, err := MarshalObject(Amounts{Requests: 50, InputTokens: 30000, OutputTokens: 8000}, LimitFieldOf, false)
	if want := `{"requestsPerMinute":50,"inputTokensPerMinute":30000,"outputTokensPerMinute":8000}`; err != nil || string(got) != want {
		t.Errorf("got %s (%v), want %s", got, err, want)
	}
	got, err = MarshalObject(Rates{OutputTokens: 0.25}, ShareFieldOf, true)
	if want := `{"outputTokens":0.25}`; err != nil || string(got) != want {
		t.Errorf("got %s (%v), want %s", got, err, want)
	}
	got, err = MarshalObject(Amounts{}, LimitFieldOf, true)
	if err != nil || string(got) != "{}" {
		t.Errorf("got %s (%v), want {}", got, err)
	}
}

func TestUnmarshalObject(t *testing.T) {
	var a Amounts
	if err := UnmarshalObject([]byte(`{"outputTokensPerMinute":7,"requestsPerMinute":null}`), &a, LimitFieldOf, nil); err != nil || a != (Amounts{OutputTokens: 7}) {
		t.Errorf("got %v (%v)", a, err)
	}
	err := UnmarshalObject([]byte(`{"outputTokensPerMinutes":7}`), &a, LimitFieldOf, nil)
	if err == nil || !strings.Contains(err.Error(), `unknown field "outputTokensPerMinutes"`) {
		t.Errorf("a misspelled member was accepted: %v", err)
	}
	if err := UnmarshalObject([]byte(`{"requestsPerMinute":"x"}`), &a, LimitFieldOf, nil); err == nil {
		t.Error("a string limit was accepted")
	}
}
