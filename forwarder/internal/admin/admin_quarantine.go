package admin

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

	"github.com/zautic/zautic-forwarder/forwarder/adminapi"
	"github.com/zautic/zautic-forwarder/forwarder/internal/quarantine"
	"github.com/zautic/zautic-forwarder/forwarder/internal/telemetry"
	"github.com/zautic/zautic-forwarder/zautic"
)

// Limits of GET /quarantine.
const (
	// maxReplayBody bounds a replay request: 1,000 sequence numbers fit.
	maxReplayBody = 64 << 10
)

// quarantineAPI is what the admin routes need; *quarantine.Replayer
// implements it.
type quarantineAPI interface {
	List(ctx context.Context, f quarantine.Filter) ([]quarantine.Entry, error)
	Replay(ctx context.Context, req adminapi.ReplayRequest, trigger string) (adminapi.ReplayAnswer, error)
}

// quarantineRoutes returns the routes of the quarantine on the admin
// listener: GET /quarantine and POST /quarantine/replay. With api nil
// (quarantine.enabled false) both answer 404 saying so. A replay stops
// starting entries after three quarters of writeTimeout, so that its answer
// (with "more":true) is still written.
func quarantineRoutes(api *quarantine.Replayer, writeTimeout time.Duration, scans scanSlots) func(*http.ServeMux) {
	return func(mux *http.ServeMux) {
		if api == nil {
			disabled := func(w http.ResponseWriter, _ *http.Request) {
				telemetry.WriteJSON(w, http.StatusNotFound, adminapi.ErrorAnswer{Error: "the quarantine is disabled (quarantine.enabled is false)"})
			}
			mux.HandleFunc("GET /quarantine", disabled)
			mux.HandleFunc("POST /quarantine/replay", disabled)
			return
		}
		mux.Handle("GET /quarantine", scans.limit(listQuarantine(api)))
		mux.HandleFunc("POST /quarantine/replay", replayQuarantine(api, writeTimeout*3/4))
	}
}

func listQuarantine(api quarantineAPI) http.HandlerFunc {
	return func(w http.ResponseWriter, req *http.Request) {
		f, err := parseListQuery(req, time.Now())
		if err != nil {
			telemetry.WriteJSON(w, http.StatusBadRequest, adminapi.ErrorAnswer{Error: err.Error()})
			return
		}
		entries, err := api.List(req.Context(), f)
		if err != nil {
			writeAPIError(w, err)
			return
		}
		// The listing reads no body, so nothing in it is verified: the t of
		// the signature header is as unsigned as the other headers here.
		answer := adminapi.ListAnswer{Entries: make([]adminapi.ListedEntry, 0, len(entries)), Unsigned: []string{"delivery_id", "event_type", "signed_at"}}
		for _, e := range entries {
			answer.Entries = append(answer.Entries, adminapi.ListedEntry{
				Seq: e.Seq, Reason: e.Reason, ReceivedAt: quarantine.ReceivedAt(e), SignedAt: signedAt(e.Header.Get(zautic.RequestSignatureHeader)),
				DeliveryID: e.Header.Get(zautic.RequestDeliveryIDHeader), EventType: e.Header.Get(zautic.RequestEventHeader), Size: e.Size,
				Endpoint: quarantine.EndpointOf(e),
			})
		}
		telemetry.WriteJSON(w, http.StatusOK, answer)
	}
}

// signedAt is the t an X-Zautic-Signature header claims, in UTC; nil when
// the header is missing or malformed, or when its t is beyond what RFC 3339
// (and so the JSON answer) can write.
func signedAt(signature string) *time.Time {
	t, err := zautic.SignatureTimestamp(signature)
	if err != nil {
		return nil
	}
	at, ok := zautic.SignedTime(t)
	if !ok {
		return nil
	}
	return &at
}

// parseListQuery reads reason, since (a duration back from now, or an RFC
// 3339 time) and limit.
func parseListQuery(req *http.Request, now time.Time) (quarantine.Filter, error) {
	q := req.URL.Query()
	f := quarantine.Filter{Reason: q.Get("reason"), Limit: adminapi.DefaultListLimit}
	if f.Reason != "" && !slices.Contains(telemetry.QuarantineReasons(), f.Reason) {
		return f, fmt.Errorf("reason %q is not one of %v", f.Reason, telemetry.QuarantineReasons())
	}
	if since := q.Get("since"); since != "" {
		var err error
		if f.Since, err = parseSince(since, now); err != nil {
			return f, err
		}
	}
	if limit := q.Get("limit"); limit != "" {
		n, err := strconv.Atoi(limit)
		if err != nil || n < 1 || n > adminapi.MaxListLimit {
			return f, fmt.Errorf("limit %q must be an integer from 1 to %d", limit, adminapi.MaxListLimit)
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
			telemetry.WriteJSON(w, http.StatusUnsupportedMediaType, adminapi.ErrorAnswer{Error: "Content-Type must be application/json"})
			return
		}
		var r adminapi.ReplayRequest
		dec := json.NewDecoder(http.MaxBytesReader(w, req.Body, maxReplayBody))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&r); err != nil {
			telemetry.WriteJSON(w, http.StatusBadRequest, adminapi.ErrorAnswer{Error: fmt.Sprintf("%v: body: %v", adminapi.ErrInvalidReplay, err)})
			return
		}
		ctx, cancel := context.WithTimeout(req.Context(), budget)
		defer cancel()
		answer, err := api.Replay(ctx, r, telemetry.TriggerAdmin)
		if err != nil {
			writeAPIError(w, err)
			return
		}
		telemetry.WriteJSON(w, http.StatusOK, answer)
	}
}

func writeAPIError(w http.ResponseWriter, err error) {
	status := http.StatusServiceUnavailable
	if errors.Is(err, adminapi.ErrInvalidReplay) {
		status = http.StatusBadRequest
	} else {
		w.Header().Set("Retry-After", retryAfter)
	}
	telemetry.WriteJSON(w, status, adminapi.ErrorAnswer{Error: err.Error()})
}
