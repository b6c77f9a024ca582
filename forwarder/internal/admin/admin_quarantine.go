package forwarder

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"mime"
	"net/http"
	"slices"
	"strconv"
	"time"

	"github.com/zautic/zautic-forwarder/zautic"
)

// Limits of GET /quarantine.
const (
	DefaultListLimit = 100
	MaxListLimit     = 1000
	// maxReplayBody bounds a replay request: 1,000 sequence numbers fit.
	maxReplayBody = 64 << 10
)

// quarantineAPI is what the admin routes need; *replayer implements it.
type quarantineAPI interface {
	List(ctx context.Context, f quarantineFilter) ([]quarantineEntry, error)
	Replay(ctx context.Context, req ReplayRequest, trigger string) (ReplayAnswer, error)
}

// ListedEntry is one entry of GET /quarantine. DeliveryID and EventType come
// from the request's unsigned headers: nothing in an entry is verified until
// it is replayed.
type ListedEntry struct {
	Seq        uint64    `json:"seq"`
	Reason     string    `json:"reason"`
	ReceivedAt time.Time `json:"received_at"`
	DeliveryID string    `json:"delivery_id"`
	EventType  string    `json:"event_type"`
	Size       int       `json:"size"`
}

// ListAnswer is the answer of GET /quarantine.
type ListAnswer struct {
	Entries []ListedEntry `json:"entries"`
	// Unsigned names the fields taken from unsigned request headers.
	Unsigned []string `json:"unsigned"`
}

// quarantineRoutes returns the routes of the quarantine on the admin
// listener: GET /quarantine and POST /quarantine/replay. With api nil
// (quarantine.enabled false) both answer 404 saying so. A replay stops
// starting entries after three quarters of writeTimeout, so that its answer
// (with "more":true) is still written.
func quarantineRoutes(api *replayer, writeTimeout time.Duration) func(*http.ServeMux) {
	return func(mux *http.ServeMux) {
		if api == nil {
			disabled := func(w http.ResponseWriter, _ *http.Request) {
				writeJSON(w, http.StatusNotFound, errorBody{Error: "the quarantine is disabled (quarantine.enabled is false)"})
			}
			mux.HandleFunc("GET /quarantine", disabled)
			mux.HandleFunc("POST /quarantine/replay", disabled)
			return
		}
		mux.HandleFunc("GET /quarantine", listQuarantine(api))
		mux.HandleFunc("POST /quarantine/replay", replayQuarantine(api, writeTimeout*3/4))
	}
}

func listQuarantine(api quarantineAPI) http.HandlerFunc {
	return func(w http.ResponseWriter, req *http.Request) {
		f, err := parseListQuery(req, time.Now())
		if err != nil {
			writeJSON(w, http.StatusBadRequest, errorBody{Error: err.Error()})
			return
		}
		entries, err := api.List(req.Context(), f)
		if err != nil {
			writeAPIError(w, err)
			return
		}
		answer := ListAnswer{Entries: make([]ListedEntry, 0, len(entries)), Unsigned: []string{"delivery_id", "event_type"}}
		for _, e := range entries {
			answer.Entries = append(answer.Entries, ListedEntry{
				Seq: e.Seq, Reason: e.Reason, ReceivedAt: receivedAt(e),
				DeliveryID: e.Header.Get(zautic.RequestDeliveryIDHeader), EventType: e.Header.Get(zautic.RequestEventHeader), Size: e.Size,
			})
		}
		writeJSON(w, http.StatusOK, answer)
	}
}

// parseListQuery reads reason, since (a duration back from now, or an RFC
// 3339 time) and limit.
func parseListQuery(req *http.Request, now time.Time) (quarantineFilter, error) {
	q := req.URL.Query()
	f := quarantineFilter{Reason: q.Get("reason"), Limit: DefaultListLimit}
	if f.Reason != "" && !slices.Contains(quarantineReasons(), f.Reason) {
		return f, fmt.Errorf("reason %q is not one of %v", f.Reason, quarantineReasons())
	}
	if since := q.Get("since"); since != "" {
		var err error
		if f.Since, err = parseSince(since, now); err != nil {
			return f, err
		}
	}
	if limit := q.Get("limit"); limit != "" {
		n, err := strconv.Atoi(limit)
		if err != nil || n < 1 || n > MaxListLimit {
			return f, fmt.Errorf("limit %q must be an integer from 1 to %d", limit, MaxListLimit)
		}
		f.Limit = n
	}
	return f, nil
}

func parseSince(since string, now time.Time) (time.Time, error) {
	if d, err := time.ParseDuration(since); err == nil && d >= 0 {
		return now.Add(-d), nil
	}
	if t, err := time.Parse(time.RFC3339Nano, since); err == nil {
		return t, nil
	}
	return time.Time{}, fmt.Errorf("since %q must be a duration such as 1h or an RFC 3339 time", since)
}

func replayQuarantine(api quarantineAPI, budget time.Duration) http.HandlerFunc {
	return func(w http.ResponseWriter, req *http.Request) {
		// A POST from a browser page on another origin can carry only a
		// "simple" content type without a preflight: requiring JSON keeps
		// such pages from triggering a replay.
		if mediaType, _, err := mime.ParseMediaType(req.Header.Get("Content-Type")); err != nil || mediaType != "application/json" {
			writeJSON(w, http.StatusUnsupportedMediaType, errorBody{Error: "Content-Type must be application/json"})
			return
		}
		var r ReplayRequest
		dec := json.NewDecoder(http.MaxBytesReader(w, req.Body, maxReplayBody))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&r); err != nil {
			writeJSON(w, http.StatusBadRequest, errorBody{Error: fmt.Sprintf("%v: body: %v", errInvalidReplay, err)})
			return
		}
		ctx, cancel := context.WithTimeout(req.Context(), budget)
		defer cancel()
		answer, err := api.Replay(ctx, r, triggerAdmin)
		if err != nil {
			writeAPIError(w, err)
			return
		}
		writeJSON(w, http.StatusOK, answer)
	}
}

func writeAPIError(w http.ResponseWriter, err error) {
	status := http.StatusServiceUnavailable
	if errors.Is(err, errInvalidReplay) {
		status = http.StatusBadRequest
	} else {
		w.Header().Set("Retry-After", unexpected.retryAfter)
	}
	writeJSON(w, status, errorBody{Error: err.Error()})
}
