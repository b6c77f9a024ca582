package zautic

import (
	"errors"
	"maps"
	"strings"
	"testing"
	"time"
)

func TestCloudEventHeaders(t *testing.T) {
	ev, err := ParseEvent([]byte(quickstartBody))
	if err != nil {
		t.Fatal(err)
	}
	tmpl := mustParseTemplate(t, "{prefix}.{type}.{data.object.device_id}")
	_, added, err := tmpl.Render("zautic", ev.Type, []byte(quickstartBody))
	if err != nil {
		t.Fatal(err)
	}
	h := map[string][]string{"Content-Type": {"application/json"}}
	NewCloudEvent(ev, []byte(quickstartBody), CloudEventsOptions{Source: "/zautic/default"}, added).SetHeaders(h)
	want := map[string][]string{
		"Content-Type":       {"application/json"},
		"ce-specversion":     {"1.0"},
		"ce-id":              {"evt_5f3c2a1b9d4e8c0a1f2b3c4d5e6f7a8b"},
		"ce-source":          {"/zautic/default"},
		"ce-type":            {"com.zautic.message.delivered"},
		"ce-time":            {"2026-01-03T09:20:00Z"}, // created 1767432000, not the sample's created_at
		"ce-datacontenttype": {"application/json"},
		"ce-subject":         {"114"},
	}
	if !maps.EqualFunc(h, want, func(a, b []string) bool { return strings.Join(a, "\n") == strings.Join(b, "\n") }) {
		t.Errorf("got headers %v, want %v", h, want)
	}
}

func TestCloudEventOptionalHeaders(t *testing.T) {
	h := map[string][]string{}
	CloudEvent{ID: "e", Source: "s", Type: "t"}.SetHeaders(h)
	for _, name := range []string{CloudEventsTimeHeader, CloudEventsSubjectHeader} {
		if v, ok := h[name]; ok {
			t.Errorf("got %s %q, want it left out", name, v)
		}
	}
}

func TestNewCloudEventTypePrefix(t *testing.T) {
	ev := Event{ID: "e", Type: "message.read"}
	got := NewCloudEvent(ev, nil, CloudEventsOptions{Source: "s", TypePrefix: "io.example.zautic"}, "").Type
	if want := "io.example.zautic.message.read"; got != want {
		t.Errorf("got type %q, want %q", got, want)
	}
}

func TestCloudEventTime(t *testing.T) {
	tests := []struct {
		created string
		want    string // "" for no ce-time
	}{
		{created: `1767432000`, want: "2026-01-03T09:20:00Z"},
		{created: `0`, want: "1970-01-01T00:00:00Z"},
		{created: `-1`, want: "1969-12-31T23:59:59Z"},
		{created: `253402300799`, want: "9999-12-31T23:59:59Z"},
		{created: `253402300800`},
		{created: `-62135596799`, want: "0001-01-01T00:00:01Z"},
		{created: `-62135596800`},
		{created: `99999999999999999999`},
		{created: `1767432000.5`},
		{created: `1.7e9`},
		{created: `"1767432000"`},
		{created: `"2026-01-03T00:00:00Z"`},
		{created: `null`},
	}
	for _, tt := range tests {
		t.Run(tt.created, func(t *testing.T) {
			body := []byte(`{"id":"e","type":"message.read","created":` + tt.created + `}`)
			h := map[string][]string{}
			NewCloudEvent(Event{ID: "e", Type: "message.read"}, body, CloudEventsOptions{Source: "s"}, "").SetHeaders(h)
			if got := strings.Join(h[CloudEventsTimeHeader], ","); got != tt.want {
				t.Errorf("got ce-time %q, want %q", got, tt.want)
			}
		})
	}
	if got := NewCloudEvent(Event{}, []byte(`{"type":"x"}`), CloudEventsOptions{}, "").Time; !got.IsZero() {
		t.Errorf("without created: got time %v, want zero", got)
	}
	h := map[string][]string{}
	CloudEvent{Time: time.Date(2026, 1, 3, 1, 2, 3, 500, time.FixedZone("x", 3600))}.SetHeaders(h)
	if got, want := h[CloudEventsTimeHeader][0], "2026-01-03T00:02:03.0000005Z"; got != want {
		t.Errorf("got ce-time %q, want %q", got, want)
	}
}

func TestCloudEventHeaderValuesArePercentEncoded(t *testing.T) {
	tests := []struct {
		value string
		want  string
	}{
		{value: "evt_1", want: "evt_1"},
		{value: "Euro € 😀", want: "Euro%20%E2%82%AC%20%F0%9F%98%80"}, // the binding's example
		{value: `a"b%c`, want: "a%22b%25c"},
		{value: "a\r\nb\x7f", want: "a%0D%0Ab%7F"},
		{value: "https://example.com/x?y=z&w=~", want: "https://example.com/x?y=z&w=~"},
		{value: "", want: ""},
	}
	for _, tt := range tests {
		h := map[string][]string{}
		CloudEvent{ID: tt.value}.SetHeaders(h)
		if got := h[CloudEventsIDHeader][0]; got != tt.want {
			t.Errorf("ce-id of %q: got %q, want %q", tt.value, got, tt.want)
		}
	}
}

func TestCloudEventsOptionsValidate(t *testing.T) {
	tests := []struct {
		name string
		opts CloudEventsOptions
		want string // "" when valid
	}{
		{name: "path", opts: CloudEventsOptions{Source: "/zautic/acme"}},
		{name: "URL and prefix", opts: CloudEventsOptions{Source: "https://zautic.com/accounts/acme", TypePrefix: "com.example.zautic"}},
		{name: "URN", opts: CloudEventsOptions{Source: "urn:zautic:account:acme"}},
		{name: "no source", opts: CloudEventsOptions{}, want: "source is empty"},
		{name: "bad source", opts: CloudEventsOptions{Source: "http://a b/%zz"}, want: "is not a URI-reference"},
		{name: "prefix with a trailing dot", opts: CloudEventsOptions{Source: "s", TypePrefix: "com.zautic."}, want: "type prefix"},
		{name: "prefix with a space", opts: CloudEventsOptions{Source: "s", TypePrefix: "com zautic"}, want: "type prefix"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.opts.Validate()
			if tt.want == "" {
				if err != nil {
					t.Fatalf("got %v, want nil", err)
				}
				return
			}
			if !errors.Is(err, ErrInvalidCloudEventsOption) || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("got %v, want ErrInvalidCloudEventsOption with %q", err, tt.want)
			}
		})
	}
}
