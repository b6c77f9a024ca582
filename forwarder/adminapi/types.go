package adminapi

import (
	"errors"
	"time"
)

// ErrorAnswer is the body of every answer that is not a 200: the reason,
// and for a webhook request the quarantine would keep whether it was kept
// (true, answered 400) or could not be (false, answered 503: retry later).
type ErrorAnswer struct {
	Error       string `json:"error"`
	Quarantined *bool  `json:"quarantined,omitempty"`
}

// Limits of GET /deliveries?limit=.
const (
	DefaultDeliveryPage = 50
	MaxDeliveryPage     = 500
)

// DeliveryRecord is what the stream tells about one published event.
type DeliveryRecord struct {
	DeliveryID  string    `json:"delivery_id"`
	EventID     string    `json:"event_id"`
	Type        string    `json:"type"`
	Subject     string    `json:"subject"`
	Stream      string    `json:"stream"`
	Seq         uint64    `json:"seq"`
	PublishedAt time.Time `json:"published_at"`
	Size        int       `json:"size"`
	Endpoint    string    `json:"endpoint"` // the endpoint that received it, "default" for the top-level one
}

// DeliveryPage is a page of deliveries, newest first. NextBeforeSeq is the
// before_seq of the next (older) page; 0 when the stream holds nothing older.
type DeliveryPage struct {
	Deliveries    []DeliveryRecord `json:"deliveries"`
	NextBeforeSeq uint64           `json:"next_before_seq"`
}

// Limits of GET /quarantine?limit=.
const (
	DefaultListLimit = 100
	MaxListLimit     = 1000
)

// ListedEntry is one entry of GET /quarantine. DeliveryID, EventType and
// SignedAt come from the request's unsigned headers: nothing in an entry is
// verified until it is replayed.
type ListedEntry struct {
	Seq        uint64    `json:"seq"`
	Reason     string    `json:"reason"`
	ReceivedAt time.Time `json:"received_at"`
	// SignedAt is the t of the X-Zautic-Signature header, in UTC; nil when
	// the header has none. It is the signed time only if a v1 verifies,
	// which the replay checks: a replay ignoring the tolerance refuses an
	// entry signed longer than dedup.ttl ago.
	SignedAt   *time.Time `json:"signed_at,omitempty"`
	DeliveryID string     `json:"delivery_id"`
	EventType  string     `json:"event_type"`
	Size       int        `json:"size"`
	Endpoint   string     `json:"endpoint"` // the endpoint that received it, "default" for the top-level one
}

// ListAnswer is the answer of GET /quarantine.
type ListAnswer struct {
	Entries []ListedEntry `json:"entries"`
	// Unsigned names the fields taken from unsigned request headers.
	Unsigned []string `json:"unsigned"`
}

// MaxReplayEntries bounds the entries one replay request (all, or seqs)
// handles; an answer with More set says that entries remain.
const MaxReplayEntries = 1000

// ErrInvalidReplay is returned when a replay request selects nothing, or
// names an unknown reason.
var ErrInvalidReplay = errors.New("invalid replay request")

// ReplayRequest selects quarantined entries and how to replay them.
type ReplayRequest struct {
	Seqs   []uint64 `json:"seqs,omitempty"`
	All    bool     `json:"all,omitempty"`
	Reason string   `json:"reason,omitempty"` // with All: only entries kept for this reason
	// IgnoreTolerance skips the timestamp check: replaying an old signed
	// request is a decision an operator takes, never the default.
	IgnoreTolerance bool `json:"ignore_tolerance,omitempty"`
	// DryRun looks everything up and changes nothing.
	DryRun bool `json:"dry_run,omitempty"`
}

// ReplayResult is the outcome of replaying one entry. Reason is the
// rejection reason of a rejected entry; Error says what failed.
type ReplayResult struct {
	Seq        uint64 `json:"seq"`
	Outcome    string `json:"outcome"`
	Reason     string `json:"reason,omitempty"`
	Error      string `json:"error,omitempty"`
	DeliveryID string `json:"delivery_id,omitempty"`
	EventID    string `json:"event_id,omitempty"`
	Subject    string `json:"subject,omitempty"`
	StreamSeq  uint64 `json:"stream_seq,omitempty"`
	Endpoint   string `json:"endpoint"` // the endpoint the entry was replayed against
}

// Outcomes of a replayed entry that leave it in the quarantine, or say it
// was not there. The others are the webhook request's outcomes (published,
// duplicate, ignored) and would_publish for a dry run.
const (
	OutcomeRejected    = "rejected"
	OutcomeUnavailable = "unavailable"
	// OutcomeNotFound is the outcome of a requested seq that is not (or no
	// longer) in the quarantine.
	OutcomeNotFound = "not_found"
)

// ReplayAnswer holds one result per entry, oldest first.
type ReplayAnswer struct {
	DryRun  bool           `json:"dry_run"`
	Results []ReplayResult `json:"results"`
	// More is set when "all" stopped at MaxReplayEntries.
	More bool `json:"more,omitempty"`
}

// Unsettled counts the entries that stay in the quarantine, or were not
// there: rejected, unavailable or not found.
func (a ReplayAnswer) Unsettled() int {
	n := 0
	for _, r := range a.Results {
		switch r.Outcome {
		case OutcomeRejected, OutcomeUnavailable, OutcomeNotFound:
			n++
		}
	}
	return n
}
