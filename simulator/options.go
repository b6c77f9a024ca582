package simulator

import (
	"errors"
	"fmt"
	"math"
	"net/url"
	"time"
)

// ErrInvalidOption is returned by NewRunner when an option is out of range;
// the message names the option.
var ErrInvalidOption = errors.New("invalid option")

// DefaultURL is where a forwarder started with the defaults listens.
const DefaultURL = "http://localhost:8080/webhooks/zautic"

// Options configures a Runner. The zero value of every field but URL and
// Secret is usable.
type Options struct {
	// URL is the webhook endpoint.
	URL string
	// Secret signs every request.
	Secret []byte
	// Types are sent round-robin, one per delivery; empty means webhook.test.
	// Ignored when Body is set.
	Types []string
	// Body, when set, is sent as it is for every delivery instead of built
	// payloads.
	Body []byte
	// Count is the number of requests, duplicates included. Zero means one
	// per type, or, with Duration set, as many as fit in Duration.
	Count int
	// Concurrency is the number of requests in flight at once (at least 1).
	Concurrency int
	// Rate caps the requests started per second over the whole run; zero is
	// unlimited.
	Rate float64
	// Duration stops starting requests after this long; zero is unlimited.
	Duration time.Duration
	// Duplicates is the fraction of requests, in [0, 1), that re-send an
	// earlier delivery id with its body, as Zautic does when it retries.
	Duplicates float64
	// Retry makes a request retry like Zautic; the zero value never retries.
	Retry RetryPolicy
	// Timeout bounds each attempt; zero means DefaultTimeout.
	Timeout time.Duration
	// Capture keeps each request's final answer in Summary.Responses; meant
	// for small runs.
	Capture bool
	// Generator builds payloads and ids; nil means a new random one.
	Generator *Generator
	// Client sends the requests; nil means NewHTTPClient(Concurrency, Timeout).
	Client HTTPDoer
}

// RetryPolicy says how a request that got a 5xx, a 429, a timeout or no
// answer at all is sent again with the same delivery id.
type RetryPolicy struct {
	// MaxRetries is the number of retries after the first attempt; zero
	// disables retrying.
	MaxRetries int
	// Backoff is the wait before the first retry; it doubles on each retry.
	// Zero means DefaultBackoff.
	Backoff time.Duration
	// MaxBackoff caps each wait, a longer Retry-After included. Zero means
	// DefaultMaxBackoff.
	MaxBackoff time.Duration
}

// MinRate is the lowest Rate but 0: one request every 1,000 seconds. Below
// it the schedule's intervals leave time.Duration's range, and a run would
// send everything at once.
const MinRate = 0.001

// Defaults of the options that have one.
const (
	DefaultTimeout    = 10 * time.Second
	DefaultBackoff    = 250 * time.Millisecond
	DefaultMaxBackoff = 10 * time.Second
	DefaultType       = "webhook.test"
)

// validate checks o and fills in its defaults.
func (o *Options) validate() error {
	checks := []struct {
		bad  bool
		what string
	}{
		{!validURL(o.URL), fmt.Sprintf("url %q must be an absolute http or https URL", o.URL)},
		{len(o.Secret) == 0, "secret must not be empty"},
		{o.Count < 0, "count must not be negative"},
		{o.Concurrency < 0, "concurrency must be at least 1"},
		// Written so that NaN, for which every comparison is false, fails.
		{!(o.Rate >= 0) || math.IsInf(o.Rate, 1), "rate must not be negative, and be a finite number"},
		{o.Rate > 0 && o.Rate < MinRate, fmt.Sprintf("rate must be 0 (unlimited) or at least %g requests a second", MinRate)},
		{o.Duration < 0, "duration must not be negative"},
		{!(o.Duplicates >= 0 && o.Duplicates < 1), "duplicates must be a fraction in [0, 1)"},
		{o.Timeout < 0, "timeout must not be negative"},
		{o.Retry.MaxRetries < 0, "retries must not be negative"},
		{o.Retry.Backoff < 0 || o.Retry.MaxBackoff < 0, "retry backoff must not be negative"},
	}
	for _, c := range checks {
		if c.bad {
			return fmt.Errorf("%w: %s", ErrInvalidOption, c.what)
		}
	}
	o.setDefaults()
	return nil
}

func (o *Options) setDefaults() {
	if o.Concurrency == 0 {
		o.Concurrency = 1
	}
	if o.Timeout == 0 {
		o.Timeout = DefaultTimeout
	}
	if o.Retry.Backoff == 0 {
		o.Retry.Backoff = DefaultBackoff
	}
	if o.Retry.MaxBackoff == 0 {
		o.Retry.MaxBackoff = DefaultMaxBackoff
	}
	if len(o.Types) == 0 {
		o.Types = []string{DefaultType}
	}
	if o.Generator == nil {
		o.Generator = NewGenerator()
	}
}

func validURL(raw string) bool {
	u, err := url.Parse(raw)
	return err == nil && (u.Scheme == "http" || u.Scheme == "https") && u.Host != ""
}
