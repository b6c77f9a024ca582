package zautic

// MessageHeaderCarrier reads and writes the headers of a published message as
// they are. NATS keeps the case of a header name, while http.Header's Get and
// Set would look for Traceparent where the message has traceparent. It has
// the methods of OpenTelemetry's propagation.TextMapCarrier, so a consumer
// continues the forwarder's trace with
//
//	ctx = propagation.TraceContext{}.Extract(ctx, zautic.MessageHeaderCarrier(msg.Headers()))
type MessageHeaderCarrier map[string][]string

// Get returns the first value of key, or "".
func (c MessageHeaderCarrier) Get(key string) string {
	if v := c[key]; len(v) > 0 {
		return v[0]
	}
	return ""
}

// Set replaces the values of key with value.
func (c MessageHeaderCarrier) Set(key, value string) { c[key] = []string{value} }

// Keys lists the header names, in no particular order.
func (c MessageHeaderCarrier) Keys() []string {
	keys := make([]string, 0, len(c))
	for k := range c {
		keys = append(keys, k)
	}
	return keys
}
