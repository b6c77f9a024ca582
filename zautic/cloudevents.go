package zautic

import (
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"time"
)

// The headers of the CloudEvents NATS protocol binding in binary content
// mode: each context attribute in a header named "ce-" and the attribute,
// lower case as the binding writes them (NATS keeps the case of a header
// name, and the CloudEvents Go SDK looks them up in lower case). The message
// data stays the raw signed body. Content-Type stays application/json: the
// binding reads a message as structured only when it is
// application/cloudevents.
const (
	// CloudEventsSpecVersionHeader carries CloudEventsSpecVersion.
	CloudEventsSpecVersionHeader = "ce-specversion"
	// CloudEventsIDHeader carries the event id.
	CloudEventsIDHeader = "ce-id"
	// CloudEventsSourceHeader carries the configured source.
	CloudEventsSourceHeader = "ce-source"
	// CloudEventsTypeHeader carries "<type prefix>.<event type>".
	CloudEventsTypeHeader = "ce-type"
	// CloudEventsTimeHeader carries the event's created, in RFC 3339.
	CloudEventsTimeHeader = "ce-time"
	// CloudEventsDataContentTypeHeader carries "application/json".
	CloudEventsDataContentTypeHeader = "ce-datacontenttype"
	// CloudEventsSubjectHeader carries the tokens a subject template adds.
	CloudEventsSubjectHeader = "ce-subject"
)

const (
	// CloudEventsSpecVersion is the CloudEvents version of the attributes.
	CloudEventsSpecVersion = "1.0"
	// DefaultCloudEventsTypePrefix makes message.delivered the CloudEvents
	// type com.zautic.message.delivered.
	DefaultCloudEventsTypePrefix = "com.zautic"
	// cloudEventsDataContentType is the media type of a Zautic body.
	cloudEventsDataContentType = "application/json"
)

// ErrInvalidCloudEventsOption is returned by CloudEventsOptions.Validate when
// an option is not valid.
var ErrInvalidCloudEventsOption = errors.New("invalid CloudEvents option")

// CloudEventsOptions are the attributes that come from the configuration
// rather than from the event.
type CloudEventsOptions struct {
	// Source is ce-source, a non-empty URI-reference naming the context the
	// event ids are unique in: one Zautic account, so one endpoint.
	Source string
	// TypePrefix is put before the event type, with a dot, to make ce-type;
	// "" means DefaultCloudEventsTypePrefix.
	TypePrefix string
}

// Validate checks that Source is a non-empty URI-reference and TypePrefix
// empty or dot-separated tokens of [A-Za-z0-9_-]. If not, an error wrapping
// ErrInvalidCloudEventsOption names the option.
func (o CloudEventsOptions) Validate() error {
	if o.Source == "" {
		return fmt.Errorf("%w: source is empty", ErrInvalidCloudEventsOption)
	}
	if _, err := url.Parse(o.Source); err != nil {
		return fmt.Errorf("%w: source %q is not a URI-reference: %w", ErrInvalidCloudEventsOption, truncate(o.Source, 64), err)
	}
	if o.TypePrefix != "" {
		if err := ValidateSubjectTokens(o.TypePrefix); err != nil {
			return fmt.Errorf("%w: type prefix %q: %w", ErrInvalidCloudEventsOption, truncate(o.TypePrefix, 64), err)
		}
	}
	return nil
}

// CloudEvent holds the CloudEvents context attributes of one Zautic event.
// Besides these, every event has specversion 1.0 and datacontenttype
// application/json.
type CloudEvent struct {
	ID     string
	Source string
	Type   string
	// Time is the event's created; zero, and ce-time left out, when created
	// is not an integer of unix seconds after the year 1 began and before
	// the year 9999 ends (RFC 3339 has four-digit years; the first second is
	// the zero time.Time).
	Time time.Time
	// Subject is "" or the tokens a subject template adds (Render's added).
	Subject string
}

// NewCloudEvent returns the attributes of the event ev, which ParseEvent read
// from body: its id, opts.Source, opts.TypePrefix and its type, the time of
// its top-level "created" (unix seconds, as Zautic sends it), and subject.
// opts must be valid for Validate.
func NewCloudEvent(ev Event, body []byte, opts CloudEventsOptions, subject string) CloudEvent {
	prefix := opts.TypePrefix
	if prefix == "" {
		prefix = DefaultCloudEventsTypePrefix
	}
	return CloudEvent{
		ID:      ev.ID,
		Source:  opts.Source,
		Type:    prefix + "." + ev.Type,
		Time:    createdTime(body),
		Subject: subject,
	}
}

// The unix seconds of 0001-01-01T00:00:00Z, the zero time.Time, and of
// 9999-12-31T23:59:59Z: RFC 3339 has four-digit years.
const (
	minRFC3339Unix = -62135596800
	maxRFC3339Unix = 253402300799
)

var createdPath = [][]string{{"created"}}

// createdTime returns the time of the body's top-level "created", or zero.
func createdTime(body []byte) time.Time {
	var values [1][]byte
	findPaths(body, createdPath, values[:])
	created := values[0]
	if !isJSONInteger(created) {
		return time.Time{}
	}
	sec, err := strconv.ParseInt(string(created), 10, 64)
	if err != nil || sec <= minRFC3339Unix || sec > maxRFC3339Unix {
		return time.Time{}
	}
	return time.Unix(sec, 0).UTC()
}

// SetHeaders sets the binary content mode headers of c in h, a message's
// headers (a nats.Header is one), each value percent-encoded as the binding
// says: space, '"', '%' and every byte outside printable ASCII become %XY.
// ce-time is left out when Time is zero, ce-subject when Subject is "".
func (c CloudEvent) SetHeaders(h map[string][]string) {
	set := func(name, value string) { h[name] = []string{percentEncodeHeaderValue(value)} }
	set(CloudEventsSpecVersionHeader, CloudEventsSpecVersion)
	set(CloudEventsIDHeader, c.ID)
	set(CloudEventsSourceHeader, c.Source)
	set(CloudEventsTypeHeader, c.Type)
	set(CloudEventsDataContentTypeHeader, cloudEventsDataContentType)
	if !c.Time.IsZero() {
		set(CloudEventsTimeHeader, c.Time.UTC().Format(time.RFC3339Nano))
	}
	if c.Subject != "" {
		set(CloudEventsSubjectHeader, c.Subject)
	}
}

// percentEncodeHeaderValue encodes, byte by byte, the UTF-8 of each character
// the binding says must be: space, '"', '%' and anything outside U+0021 to
// U+007E. Upper-case hex, as the binding recommends.
func percentEncodeHeaderValue(s string) string {
	n := 0
	for i := 0; i < len(s); i++ {
		if needsPercentEncoding(s[i]) {
			n++
		}
	}
	if n == 0 {
		return s
	}
	const hexDigits = "0123456789ABCDEF"
	out := make([]byte, 0, len(s)+2*n)
	for i := 0; i < len(s); i++ {
		if c := s[i]; needsPercentEncoding(c) {
			out = append(out, '%', hexDigits[c>>4], hexDigits[c&0xF])
		} else {
			out = append(out, c)
		}
	}
	return string(out)
}

func needsPercentEncoding(c byte) bool {
	return c <= ' ' || c >= 0x7F || c == '"' || c == '%'
}
