package zautic

import (
	"errors"
	"slices"
	"strings"
	"testing"
)

const quickstartBody = `{
  "id": "evt_5f3c2a1b9d4e8c0a1f2b3c4d5e6f7a8b",
  "type": "message.delivered",
  "created": 1767432000,
  "created_at": "2026-01-03T00:00:00.000Z",
  "livemode": true,
  "data": {
    "object": {
      "message_id": "3EB0DC15F6ACF859FB492F",
      "phone": "919876543210",
      "device_id": 114,
      "status": "delivered",
      "direction": "outgoing"
    }
  }
}`

func mustParseTemplate(t *testing.T, s string) SubjectTemplate {
	t.Helper()
	tmpl, err := ParseSubjectTemplate(s)
	if err != nil {
		t.Fatal(err)
	}
	return tmpl
}

func TestParseSubjectTemplateRejects(t *testing.T) {
	tests := []struct {
		template string
		want     string // in the error message
	}{
		{template: "", want: "empty; the default is"},
		{template: "{prefix}..{type}", want: "empty token at byte 9"},
		{template: ".{prefix}.{type}", want: "empty token at byte 0"},
		{template: "{prefix}.{type}.", want: "empty token at byte 16"},
		{template: "{prefix}.{type", want: "'{' at byte 9 is never closed"},
		{template: "{prefix}.type}", want: "'}' at byte 13 closes no '{'"},
		{template: "{prefix}.{{type}}", want: "'{' at byte 10 inside the placeholder opened at byte 9"},
		{template: "{prefix}.{type}.{data.{x}}", want: "'{' at byte 22 inside the placeholder opened at byte 16"},
		{template: "{prefix}.x{type}", want: `"x{type}" at byte 9: a placeholder must be a whole token`},
		{template: "{prefix}.{type}x", want: `"{type}x" at byte 9: a placeholder must be a whole token`},
		{template: "{prefix}.{type}{id}", want: `"{type}{id}" at byte 9: a placeholder must be a whole token`},
		{template: "{prefix}.{type}.{}", want: "empty path {} at byte 16"},
		{template: "{prefix}.{type}.{data..id}", want: "empty path segment at byte 22 of {data..id}"},
		{template: "{prefix}.{type}.{.id}", want: "empty path segment at byte 17 of {.id}"},
		{template: "{prefix}.{type}.{id.}", want: "empty path segment at byte 20 of {id.}"},
		{template: "{prefix}.{Type}", want: "unknown placeholder {Type} at byte 9: names are case-sensitive"},
		{template: "{PREFIX}.{type}", want: "unknown placeholder {PREFIX} at byte 0: names are case-sensitive"},
		{template: "{prefix}.{type.x}", want: "unknown placeholder {type.x} at byte 9: {type} takes no path"},
		{template: "{prefix}.{ type }", want: "unknown placeholder { type } at byte 9: character ' ' at byte 10"},
		{template: "{prefix}.{type}.{data.*}", want: "unknown placeholder {data.*} at byte 16: character '*' at byte 22"},
		{template: "{prefix}.{type}.{dévice}", want: "unknown placeholder {dévice} at byte 16: character 'é' at byte 18"},
		{template: "{prefix}.*.{type}", want: "wildcard '*' at byte 9"},
		{template: "{prefix}.{type}.>", want: "wildcard '>' at byte 16"},
		{template: "{prefix}.{type}.a*", want: "wildcard '*' at byte 17"},
		{template: "{prefix}.{type}.a b", want: `character ' ' at byte 17 of the literal token "a b"`},
		{template: "{prefix}.{type}.~x", want: `character '~' at byte 16 of the literal token "~x"`},
		{template: "{prefix}.{type}.$x", want: `character '$' at byte 16`},
		{template: "{type}.{prefix}", want: "the first token must be {prefix}"},
		{template: "zautic.{prefix}.{type}", want: "the first token must be {prefix}"},
		{template: "{prefix}.{prefix}.{type}", want: "{prefix} is there 2 times"},
		{template: "{prefix}", want: "{type} is there 0 times"},
		{template: "{prefix}.{type}.{type}", want: "{type} is there 2 times"},
		{template: "{prefix}.{type}.{a}.{b}.{c}.{d}.{e}.{f}.{g}.{h}.{i}.{j}.{k}.{l}.{m}.{n}.{o}.{p}.{q}", want: "more than 16 paths"},
	}
	for _, tt := range tests {
		t.Run(tt.template, func(t *testing.T) {
			tmpl, err := ParseSubjectTemplate(tt.template)
			if !errors.Is(err, ErrInvalidSubjectTemplate) {
				t.Fatalf("got error %v, want ErrInvalidSubjectTemplate", err)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("got %q, want it to contain %q", err, tt.want)
			}
			if tmpl.String() != DefaultSubjectTemplate {
				t.Errorf("got template %q with the error, want the zero value", tmpl)
			}
		})
	}
}

func TestParseSubjectTemplateAccepts(t *testing.T) {
	tests := []struct {
		template string
		paths    []string
	}{
		{template: DefaultSubjectTemplate, paths: []string{}},
		{template: "{prefix}.{type}.{data.object.device_id}", paths: []string{"data.object.device_id"}},
		{template: "{prefix}.{data.object.device_id}.{type}", paths: []string{"data.object.device_id"}},
		{template: "{prefix}.v1.{type}.device.{data.object.device_id}.{data.object.phone}", paths: []string{"data.object.device_id", "data.object.phone"}},
		{template: "{prefix}.{type}.{id}.{id}", paths: []string{"id"}},
		{template: "{prefix}.{type}.{prefix_x}.{Types}", paths: []string{"prefix_x", "Types"}},
		{template: "{prefix}.{type}.{a-b._c}", paths: []string{"a-b._c"}},
	}
	for _, tt := range tests {
		t.Run(tt.template, func(t *testing.T) {
			tmpl := mustParseTemplate(t, tt.template)
			if tmpl.String() != tt.template {
				t.Errorf("got String %q, want %q", tmpl, tt.template)
			}
			if got := tmpl.Paths(); !slices.Equal(got, tt.paths) {
				t.Errorf("got paths %q, want %q", got, tt.paths)
			}
		})
	}
}

func TestSubjectTemplateSubject(t *testing.T) {
	device := "{prefix}.{type}.{data.object.device_id}"
	tests := []struct {
		name     string
		template string
		body     string
		want     string
		added    string
	}{
		{name: "zero value is the default", template: "", body: quickstartBody, want: "zautic.message.delivered"},
		{name: "default", template: DefaultSubjectTemplate, body: quickstartBody, want: "zautic.message.delivered"},
		{name: "device id", template: device, body: quickstartBody, want: "zautic.message.delivered.114", added: "114"},
		{name: "device and phone", template: "{prefix}.{type}.{data.object.device_id}.{data.object.phone}", body: quickstartBody,
			want: "zautic.message.delivered.114.919876543210", added: "114.919876543210"},
		{name: "literal and path", template: "{prefix}.{type}.device.{data.object.device_id}", body: quickstartBody,
			want: "zautic.message.delivered.device.114", added: "device.114"},
		{name: "path before type", template: "{prefix}.{data.object.device_id}.{type}", body: quickstartBody,
			want: "zautic.114.message.delivered", added: "114"},
		{name: "added tokens apart", template: "{prefix}.v1.{type}.{data.object.device_id}", body: quickstartBody,
			want: "zautic.v1.message.delivered.114", added: "v1.114"},
		{name: "top-level member", template: "{prefix}.{type}.{id}", body: quickstartBody,
			want: "zautic.message.delivered.evt_5f3c2a1b9d4e8c0a1f2b3c4d5e6f7a8b", added: "evt_5f3c2a1b9d4e8c0a1f2b3c4d5e6f7a8b"},
		{name: "bool", template: "{prefix}.{type}.{livemode}", body: quickstartBody, want: "zautic.message.delivered._", added: "_"},
		{name: "object", template: "{prefix}.{type}.{data.object}", body: quickstartBody, want: "zautic.message.delivered._", added: "_"},
		{name: "missing field", template: device, body: `{"id":"e","type":"t","data":{"object":{}}}`, want: "zautic.message.delivered._", added: "_"},
		{name: "missing object", template: device, body: `{"id":"e","type":"t"}`, want: "zautic.message.delivered._", added: "_"},
		{name: "path through a string", template: device, body: `{"data":{"object":"114"}}`, want: "zautic.message.delivered._", added: "_"},
		{name: "path through an array", template: device, body: `{"data":[{"object":{"device_id":1}}]}`, want: "zautic.message.delivered._", added: "_"},
		{name: "array value", template: device, body: `{"data":{"object":{"device_id":[114]}}}`, want: "zautic.message.delivered._", added: "_"},
		{name: "null", template: device, body: `{"data":{"object":{"device_id":null}}}`, want: "zautic.message.delivered._", added: "_"},
		{name: "empty string", template: device, body: `{"data":{"object":{"device_id":""}}}`, want: "zautic.message.delivered._", added: "_"},
		{name: "fraction", template: device, body: `{"data":{"object":{"device_id":114.5}}}`, want: "zautic.message.delivered._", added: "_"},
		{name: "string id", template: device, body: `{"data":{"object":{"device_id":"dev-7"}}}`, want: "zautic.message.delivered.dev-7", added: "dev-7"},
		{name: "dot", template: device, body: `{"data":{"object":{"device_id":"a.b"}}}`, want: "zautic.message.delivered." + hashOf("a.b"), added: hashOf("a.b")},
		{name: "star", template: device, body: `{"data":{"object":{"device_id":"*"}}}`, want: "zautic.message.delivered." + hashOf("*"), added: hashOf("*")},
		{name: "greater than", template: device, body: `{"data":{"object":{"device_id":">"}}}`, want: "zautic.message.delivered." + hashOf(">"), added: hashOf(">")},
		{name: "white space", template: device, body: `{"data":{"object":{"device_id":" 114 "}}}`, want: "zautic.message.delivered." + hashOf(" 114 "), added: hashOf(" 114 ")},
		{name: "1 KB", template: device, body: `{"data":{"object":{"device_id":"` + strings.Repeat("9", 1024) + `"}}}`,
			want: "zautic.message.delivered." + hashOf(strings.Repeat("9", 1024)), added: hashOf(strings.Repeat("9", 1024))},
		{name: "lone surrogate escape", template: device, body: `{"data":{"object":{"device_id":"\udc80"}}}`,
			want: "zautic.message.delivered." + hashOf("\uFFFD"), added: hashOf("\uFFFD")},
		{name: "escaped member name", template: device, body: `{"d\u0061ta":{"object":{"device_\u0069d":7}}}`, want: "zautic.message.delivered.7", added: "7"},
		{name: "names are case-sensitive", template: device, body: `{"Data":{"object":{"device_id":7}}}`, want: "zautic.message.delivered._", added: "_"},
		{name: "last duplicate wins", template: device, body: `{"data":{"object":{"device_id":1,"device_id":2}}}`, want: "zautic.message.delivered.2", added: "2"},
		{name: "a later parent replaces an earlier one", template: device,
			body: `{"data":{"object":{"device_id":1}},"data":{"other":true}}`, want: "zautic.message.delivered._", added: "_"},
		{name: "an earlier parent is replaced", template: device,
			body: `{"data":{"other":true},"data":{"object":{"device_id":2}}}`, want: "zautic.message.delivered.2", added: "2"},
		{name: "the same name deeper is not the path", template: device,
			body: `{"object":{"device_id":1},"data":{"x":{"object":{"device_id":2}}}}`, want: "zautic.message.delivered._", added: "_"},
		{name: "values of other members are skipped whole", template: device,
			body: `{"x":"{\"data\":{\"object\":{\"device_id\":1}}}","y":[{"data":{"object":{"device_id":3}}}],"data":{"object":{"device_id":2}}}`,
			want: "zautic.message.delivered.2", added: "2"},
		{name: "not an object", template: device, body: `[{"data":{"object":{"device_id":1}}}]`, want: "zautic.message.delivered._", added: "_"},
		{name: "truncated body", template: device, body: `{"data":{"object":{"device_id":`, want: "zautic.message.delivered._", added: "_"},
		{name: "empty body", template: device, body: ``, want: "zautic.message.delivered._", added: "_"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var tmpl SubjectTemplate
			if tt.template != "" {
				tmpl = mustParseTemplate(t, tt.template)
			}
			subject, added, err := tmpl.Render("zautic", "message.delivered", []byte(tt.body))
			if err != nil {
				t.Fatal(err)
			}
			if subject != tt.want || added != tt.added {
				t.Errorf("got %q, added %q; want %q, added %q", subject, added, tt.want, tt.added)
			}
			if s, err := tmpl.Subject("zautic", "message.delivered", []byte(tt.body)); s != subject || err != nil {
				t.Errorf("Subject: got %q, %v; want %q, nil", s, err, subject)
			}
		})
	}
}

func TestSubjectTemplateRejectsTheTypeAsSubjectForDoes(t *testing.T) {
	tmpl := mustParseTemplate(t, "{prefix}.{type}.{data.object.device_id}")
	for _, typ := range []string{"", "message.>", "a..b", "a b", strings.Repeat("a", MaxTypeLength+1)} {
		_, err := tmpl.Subject("zautic", typ, []byte(quickstartBody))
		if _, want := SubjectFor("zautic", typ); !errors.Is(err, ErrInvalidType) || err.Error() != want.Error() {
			t.Errorf("type %q: got error %v, want %v", typ, err, want)
		}
	}
}

// The hot path: one allocation, the subject, for a value that maps to itself
// or to a hash.
func TestSubjectTemplateAllocations(t *testing.T) {
	tmpl := mustParseTemplate(t, "{prefix}.{type}.{data.object.device_id}.{data.object.status}")
	bodies := map[string][]byte{
		"safe":   []byte(quickstartBody),
		"hashed": []byte(strings.Replace(quickstartBody, `"delivered",`, `"de.li.vered",`, 1)),
	}
	for name, body := range bodies {
		allocs := testing.AllocsPerRun(100, func() {
			if _, _, err := tmpl.Render("zautic", "message.delivered", body); err != nil {
				t.Fatal(err)
			}
		})
		if allocs > 1 {
			t.Errorf("%s: got %v allocations per render, want at most 1", name, allocs)
		}
	}
}

func BenchmarkSubjectTemplate(b *testing.B) {
	tmpl, err := ParseSubjectTemplate("{prefix}.{type}.{data.object.device_id}")
	if err != nil {
		b.Fatal(err)
	}
	// A body near the 256 KiB limit, the device id after the large member.
	large := []byte(`{"id":"evt_1","type":"message.delivered","data":{"pad":"` + strings.Repeat("x", 250<<10) + `","object":{"device_id":114}}}`)
	for _, bb := range []struct {
		name string
		body []byte
	}{{"quickstart", []byte(quickstartBody)}, {"250KiB", large}} {
		b.Run(bb.name, func(b *testing.B) {
			b.SetBytes(int64(len(bb.body)))
			b.ReportAllocs()
			for b.Loop() {
				if _, err := tmpl.Subject("zautic", "message.delivered", bb.body); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
