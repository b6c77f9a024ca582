package zautic_test

import (
	"errors"
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/zautic/zautic-forwarder/zautic"
)

// Zautic signs "<t>.<raw body>"; a receiver verifies the same bytes against
// every secret it accepts, here during a rotation from "old" to "new".
func ExampleVerifySignature() {
	body := []byte(`{"id":"evt_1","type":"message.delivered"}`)
	signedAt := time.Unix(1700000000, 0)
	header := zautic.Sign([]byte("whsec_test"), signedAt.Unix(), body)
	fmt.Println(header)

	secrets := [][]byte{[]byte("old"), []byte("whsec_test")}
	now := signedAt.Add(30 * time.Second)
	v, err := zautic.VerifySignature(body, header, secrets, 5*time.Minute, now)
	fmt.Println(v.Timestamp, v.Secret, err)

	_, err = zautic.VerifySignature([]byte(`{"id":"evt_2"}`), header, secrets, 5*time.Minute, now)
	fmt.Println(errors.Is(err, zautic.ErrNoValidSignature))

	_, err = zautic.VerifySignature(body, header, secrets, 5*time.Minute, signedAt.Add(time.Hour))
	fmt.Println(errors.Is(err, zautic.ErrTooOld))
	// Output:
	// t=1700000000,v1=cebf924d8e4237db8f7cc65f16141ca7f25b8bbf1c3fea75e47d77686d95e468
	// 1700000000 1 <nil>
	// true
	// true
}

// A message's subject is the prefix and the event type; a type that could
// inject wildcards or extra tokens is refused.
func ExampleSubjectFor() {
	subject, err := zautic.SubjectFor("zautic", "message.delivered")
	fmt.Println(subject, err)

	_, err = zautic.SubjectFor("zautic", "message.>")
	fmt.Println(errors.Is(err, zautic.ErrInvalidType))
	// Output:
	// zautic.message.delivered <nil>
	// true
}

// Sign produces the header exactly as Zautic sends it; the simulator and the
// tests sign with it, so they sign exactly as the verifier checks.
func ExampleSign() {
	body := []byte(`{"id":"evt_1","type":"message.delivered"}`)
	fmt.Println(zautic.Sign([]byte("whsec_test"), 1700000000, body))
	// Output:
	// t=1700000000,v1=cebf924d8e4237db8f7cc65f16141ca7f25b8bbf1c3fea75e47d77686d95e468
}

// A template adds signed body fields to the subject, one token each, so that
// a consumer can filter one device; a value that is not a safe token is
// hashed, and a missing one is "_".
func ExampleParseSubjectTemplate() {
	tmpl, err := zautic.ParseSubjectTemplate("{prefix}.{type}.{data.object.device_id}")
	if err != nil {
		panic(err)
	}
	for _, body := range []string{
		`{"id":"evt_1","type":"message.delivered","data":{"object":{"device_id":114}}}`,
		`{"id":"evt_2","type":"message.delivered","data":{"object":{"device_id":"a.>"}}}`,
		`{"id":"evt_3","type":"message.delivered","data":{"object":{}}}`,
	} {
		subject, err := tmpl.Subject("zautic", "message.delivered", []byte(body))
		fmt.Println(subject, err)
	}

	_, err = zautic.ParseSubjectTemplate("{prefix}.{type}.x{data.object.device_id}")
	fmt.Println(err)
	// Output:
	// zautic.message.delivered.114 <nil>
	// zautic.message.delivered.~b4f14dfd503221f9e21bb48635c64bf6 <nil>
	// zautic.message.delivered._ <nil>
	// invalid subject template "{prefix}.{type}.x{data.object.device_id}": "x{data.object.device_id}" at byte 16: a placeholder must be a whole token, between dots
}

// A consumer computes the token of a value it knows, to subscribe to that
// device's events only.
func ExampleSubjectTokenForString() {
	fmt.Println("zautic.message.delivered." + zautic.SubjectTokenForInt(114))
	fmt.Println("zautic.message.delivered." + zautic.SubjectTokenForString("dev-7"))
	fmt.Println("zautic.message.delivered." + zautic.SubjectTokenForString("a.>"))
	fmt.Println(zautic.SubjectTokenForString(""), zautic.SubjectTokenForString("_"))
	// Output:
	// zautic.message.delivered.114
	// zautic.message.delivered.dev-7
	// zautic.message.delivered.~b4f14dfd503221f9e21bb48635c64bf6
	// _ ~d2e2adf7177b7a8afddbc12d1634cf23
}

// The CloudEvents attributes of an event, as the headers of the NATS binding's
// binary content mode; the message data stays the signed body.
func ExampleNewCloudEvent() {
	body := []byte(`{"id":"evt_1","type":"message.delivered","created":1767432000,"data":{"object":{"device_id":114}}}`)
	ev, err := zautic.ParseEvent(body)
	if err != nil {
		panic(err)
	}
	tmpl, err := zautic.ParseSubjectTemplate("{prefix}.{type}.{data.object.device_id}")
	if err != nil {
		panic(err)
	}
	subject, added, err := tmpl.Render("zautic", ev.Type, body)
	if err != nil {
		panic(err)
	}
	headers := map[string][]string{} // a nats.Header
	zautic.NewCloudEvent(ev, body, zautic.CloudEventsOptions{Source: "/zautic/default"}, added).SetHeaders(headers)
	fmt.Println(subject)
	for _, name := range slices.Sorted(maps.Keys(headers)) {
		fmt.Printf("%s: %s\n", name, headers[name][0])
	}
	// Output:
	// zautic.message.delivered.114
	// ce-datacontenttype: application/json
	// ce-id: evt_1
	// ce-source: /zautic/default
	// ce-specversion: 1.0
	// ce-subject: 114
	// ce-time: 2026-01-03T09:20:00Z
	// ce-type: com.zautic.message.delivered
}
