package zautic

import (
	"slices"
	"testing"
)

func TestMessageHeaderCarrierKeepsCase(t *testing.T) {
	header := map[string][]string{MessageIDHeader: {"dlv_1"}}
	c := MessageHeaderCarrier(header)
	c.Set(MessageTraceparentHeader, "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")
	tests := []struct {
		key  string
		want string
	}{
		{MessageTraceparentHeader, "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"},
		{"Traceparent", ""},
		{MessageIDHeader, "dlv_1"},
		{MessageTracestateHeader, ""},
	}
	for _, tt := range tests {
		if got := c.Get(tt.key); got != tt.want {
			t.Errorf("Get(%q): got %q, want %q", tt.key, got, tt.want)
		}
	}
	keys := c.Keys()
	slices.Sort(keys)
	if want := []string{MessageIDHeader, MessageTraceparentHeader}; !slices.Equal(keys, want) {
		t.Errorf("Keys: got %v, want %v", keys, want)
	}
	if got := header[MessageTraceparentHeader]; len(got) != 1 {
		t.Errorf("the carrier wrote %v into the header map, want one value", got)
	}
}
