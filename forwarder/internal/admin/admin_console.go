package admin

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"html/template"
	"io/fs"
	"net/http"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/zautic/zautic-forwarder/forwarder/adminapi"
	"github.com/zautic/zautic-forwarder/forwarder/internal/natsconn"
	"github.com/zautic/zautic-forwarder/forwarder/internal/store"
	"github.com/zautic/zautic-forwarder/forwarder/internal/telemetry"
	"github.com/zautic/zautic-forwarder/zautic"
)

// Limits of the inspector's API.
const (
	// maxDeliveryIDBytes is the longest id GET /deliveries/{id} accepts.
	maxDeliveryIDBytes = 1024
	// inspectTimeout bounds one inspector request's reads from NATS.
	inspectTimeout = 10 * time.Second
	// pageRefreshSeconds is how often the page refreshes itself.
	pageRefreshSeconds = 5
)

// pageCSP allows nothing but this listener: no inline script, no other host.
const pageCSP = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; " +
	"connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"

// inspector is what the admin console asks of the broker; *Broker
// implements it.
type inspector interface {
	LookupDelivery(ctx context.Context, id, endpoint string) (deliveryLookup, error)
	ListDeliveries(ctx context.Context, q deliveryQuery) (adminapi.DeliveryPage, error)
	DeliveryBody(ctx context.Context, id, endpoint string) ([]byte, string, error)
}

// Status is the webhook path's state, which the page's overview shows;
// *store.Broker implements it. Neither method touches the network.
type Status interface {
	Ready() error
	Connection() natsconn.State
}

// View is what the page and the overview name.
type View struct {
	Stream     string // stream.name
	DedupKey   string // dedup.key
	Quarantine bool   // the quarantine API is served
	// Endpoints are the endpoint labels the page filters by; the filter is
	// shown when there is more than one.
	Endpoints []string
}

// console serves the delivery inspector: its API, the page and its files.
type console struct {
	view     View
	status   Status
	insp     inspector
	gatherer prometheus.Gatherer
	token    *adminToken
	page     *template.Template
	started  time.Time
}

// newAdminConsole puts the delivery inspector in front of admin, the
// handler of newAdminHandler: GET / (the page) and /static/, GET /overview,
// GET /deliveries, /deliveries/{id} and /deliveries/{id}/body. Every path
// that returns or changes data, its own and admin's (/deliveries…,
// /quarantine…, /debug/pprof/), is guarded (guardAdmin): by the token when
// one is set, else open to loopback only; the probes, /metrics, /overview
// and the page stay open.
func newAdminConsole(view View, admin http.Handler, status Status, insp inspector, gatherer prometheus.Gatherer, token *adminToken, scans scanSlots) http.Handler {
	c := &console{view: view, status: status, insp: insp, gatherer: gatherer, token: token, page: pageTemplate, started: time.Now()}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", c.servePage)
	mux.Handle("GET /static/", withPageHeaders(http.StripPrefix("/static/", http.FileServerFS(staticFiles))))
	mux.HandleFunc("GET /overview", c.serveOverview)
	mux.Handle("GET /deliveries", scans.limit(http.HandlerFunc(c.serveList)))
	mux.Handle("GET /deliveries/{id}", scans.limit(byID(c.serveLookup)))
	mux.Handle("GET /deliveries/{id}/body", scans.limit(byID(c.serveBody)))
	mux.Handle("/", admin)
	return guardAdmin(token, mux)
}

// inspectStatus maps the inspector's errors to statuses; the first match
// wins.
var inspectStatus = []struct {
	err    error
	status int
}{
	{errDeliveryNotFound, http.StatusNotFound},
	{zautic.ErrInvalidType, http.StatusBadRequest},
	{errUnknownEndpoint, http.StatusBadRequest},
	{store.ErrNotReady, http.StatusServiceUnavailable},
	{errInspect, http.StatusServiceUnavailable},
}

// retryAfter is the Retry-After of a 503: NATS is back within seconds or
// not soon.
const retryAfter = "2"

func writeInspectError(w http.ResponseWriter, err error) {
	status := http.StatusInternalServerError
	for _, e := range inspectStatus {
		if errors.Is(err, e.err) {
			status = e.status
			break
		}
	}
	if status == http.StatusServiceUnavailable {
		w.Header().Set("Retry-After", retryAfter)
	}
	telemetry.WriteJSON(w, status, adminapi.ErrorAnswer{Error: err.Error()})
}

// publishedAnswer is the answer for an id found in the stream; quarantine
// lists earlier quarantined attempts of the same delivery, if any.
type publishedAnswer struct {
	adminapi.DeliveryRecord
	Status     string             `json:"status"`
	Quarantine []quarantineRecord `json:"quarantine,omitempty"`
}

// quarantinedAnswer carries the newest entry's fields at the top, and every
// entry in entries.
type quarantinedAnswer struct {
	Status string `json:"status"`
	quarantineRecord
	Entries []quarantineRecord `json:"entries"`
}

type expiredAnswer struct {
	Status string `json:"status"`
	expiredMark
	Detail     string             `json:"detail"`
	Quarantine []quarantineRecord `json:"quarantine,omitempty"`
}

// Statuses of GET /deliveries/{id}.
const (
	deliveryPublished   = "published"
	deliveryQuarantined = "quarantined"
	deliveryExpired     = "expired"
)

// byID checks the path's {id} and serves it under the inspector's deadline.
func byID(serve func(ctx context.Context, w http.ResponseWriter, id, endpoint string)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		id := r.PathValue("id")
		if len(id) > maxDeliveryIDBytes {
			telemetry.WriteJSON(w, http.StatusBadRequest, adminapi.ErrorAnswer{Error: fmt.Sprintf("id is %d bytes, longer than %d", len(id), maxDeliveryIDBytes)})
			return
		}
		ctx, cancel := context.WithTimeout(r.Context(), inspectTimeout)
		defer cancel()
		serve(ctx, w, id, r.URL.Query().Get("endpoint"))
	}
}

func (c *console) serveLookup(ctx context.Context, w http.ResponseWriter, id, endpoint string) {
	found, err := c.insp.LookupDelivery(ctx, id, endpoint)
	switch {
	case errors.Is(err, errDeliveryNotFound):
		telemetry.WriteJSON(w, http.StatusNotFound, adminapi.ErrorAnswer{Error: fmt.Sprintf("no delivery %q in the dedup bucket, the stream or the quarantine", id)})
	case err != nil:
		writeInspectError(w, err)
	case found.Published != nil:
		telemetry.WriteJSON(w, http.StatusOK, publishedAnswer{DeliveryRecord: *found.Published, Status: deliveryPublished, Quarantine: found.Quarantined})
	case found.Expired != nil:
		telemetry.WriteJSON(w, http.StatusOK, expiredAnswer{Status: deliveryExpired, expiredMark: *found.Expired, Quarantine: found.Quarantined,
			Detail: fmt.Sprintf("published as sequence %d, which has aged out of stream %s", found.Expired.Seq, found.Expired.Stream)})
	default:
		newest := found.Quarantined[len(found.Quarantined)-1]
		telemetry.WriteJSON(w, http.StatusOK, quarantinedAnswer{Status: deliveryQuarantined, quarantineRecord: newest, Entries: found.Quarantined})
	}
}

func (c *console) serveBody(ctx context.Context, w http.ResponseWriter, id, endpoint string) {
	body, contentType, err := c.insp.DeliveryBody(ctx, id, endpoint)
	if err != nil {
		writeInspectError(w, err)
		return
	}
	w.Header().Set("Content-Type", contentType)
	// The body came from a sender: never let a browser run it as a page.
	w.Header().Set("Content-Security-Policy", "default-src 'none'; sandbox")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	_, _ = w.Write(body)
}

func (c *console) serveList(w http.ResponseWriter, r *http.Request) {
	q, err := parseDeliveryQuery(r)
	if err != nil {
		telemetry.WriteJSON(w, http.StatusBadRequest, adminapi.ErrorAnswer{Error: err.Error()})
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), inspectTimeout)
	defer cancel()
	page, err := c.insp.ListDeliveries(ctx, q)
	if err != nil {
		writeInspectError(w, err)
		return
	}
	telemetry.WriteJSON(w, http.StatusOK, page)
}

// parseDeliveryQuery parses limit, type and before_seq; the error names the
// parameter.
func parseDeliveryQuery(r *http.Request) (deliveryQuery, error) {
	v := r.URL.Query()
	q := deliveryQuery{Limit: adminapi.DefaultDeliveryPage, Type: v.Get("type"), Endpoint: v.Get("endpoint")}
	if s := v.Get("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > adminapi.MaxDeliveryPage {
			return q, fmt.Errorf("limit must be an integer from 1 to %d, got %.32q", adminapi.MaxDeliveryPage, s)
		}
		q.Limit = n
	}
	if s := v.Get("before_seq"); s != "" {
		n, err := strconv.ParseUint(s, 10, 64)
		if err != nil || n == 0 {
			return q, fmt.Errorf("before_seq must be a positive integer, got %.32q", s)
		}
		q.BeforeSeq = n
	}
	return q, nil
}

// overview is the page's header: readiness, the connection and the counts
// of webhook requests by outcome since the process started. It holds what
// /readyz and /metrics already show, so it stays open.
type overview struct {
	Ready     bool             `json:"ready"`
	NotReady  string           `json:"not_ready,omitempty"`
	NATS      natsconn.State   `json:"nats"`
	Stream    string           `json:"stream"`
	DedupKey  string           `json:"dedup_key"`
	StartedAt time.Time        `json:"started_at"`
	Outcomes  map[string]int64 `json:"outcomes"`
	// Replayed counts the quarantined entries this process published on
	// replay: they are no webhook request, so Outcomes never shows them.
	Replayed int64 `json:"replayed"`
}

func (c *console) serveOverview(w http.ResponseWriter, _ *http.Request) {
	o := overview{
		Ready: true, NATS: c.status.Connection(), Stream: c.view.Stream, DedupKey: c.view.DedupKey,
		StartedAt: c.started.UTC(),
	}
	o.Outcomes, o.Replayed = outcomeCounts(c.gatherer)
	if err := c.status.Ready(); err != nil {
		o.Ready, o.NotReady = false, err.Error()
	}
	telemetry.WriteJSON(w, http.StatusOK, o)
}

// outcomeCounts sums zautic_forwarder_webhook_requests_total by outcome,
// and zautic_forwarder_quarantine_replayed_total of outcome published.
func outcomeCounts(g prometheus.Gatherer) (map[string]int64, int64) {
	counts := map[string]int64{}
	var replayed int64
	families, _ := g.Gather() // a partial gather still counts what it has
	for _, f := range families {
		switch f.GetName() {
		case "zautic_forwarder_webhook_requests_total":
			for _, m := range f.GetMetric() {
				if outcome, ok := labelValue(m, "outcome"); ok {
					counts[outcome] += int64(m.GetCounter().GetValue())
				}
			}
		case "zautic_forwarder_quarantine_replayed_total":
			for _, m := range f.GetMetric() {
				if outcome, _ := labelValue(m, "outcome"); outcome == telemetry.OutcomePublished {
					replayed += int64(m.GetCounter().GetValue())
				}
			}
		}
	}
	return counts, replayed
}

func labelValue(m *dto.Metric, name string) (string, bool) {
	for _, l := range m.GetLabel() {
		if l.GetName() == name {
			return l.GetValue(), true
		}
	}
	return "", false
}

// pageData is what the page's template needs; the data itself comes from
// the API, so the page can stay open.
type pageData struct {
	Stream         string
	TokenRequired  bool
	Quarantine     bool // the quarantine API is served
	Types          []string
	RefreshSeconds int
	Endpoints      []string
}

func (c *console) servePage(w http.ResponseWriter, _ *http.Request) {
	setPageHeaders(w.Header())
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	_ = c.page.Execute(w, pageData{
		Stream: c.view.Stream, TokenRequired: c.token.Required(), Quarantine: c.view.Quarantine,
		Types: zautic.DocumentedTypes(), RefreshSeconds: pageRefreshSeconds, Endpoints: c.view.Endpoints,
	})
}

func setPageHeaders(h http.Header) {
	h.Set("Content-Security-Policy", pageCSP)
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("X-Frame-Options", "DENY")
}

func withPageHeaders(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		setPageHeaders(w.Header())
		next.ServeHTTP(w, r)
	})
}

// The page and its files are built into the binary: no build step, and
// nothing fetched from another host.
var (
	//go:embed web/static
	webFiles     embed.FS
	staticFiles  = mustSub(webFiles, "web/static")
	pageTemplate = template.Must(template.ParseFS(webPage, "web/index.html.tmpl"))
	//go:embed web/index.html.tmpl
	webPage embed.FS
)

func mustSub(fsys fs.FS, dir string) fs.FS {
	sub, err := fs.Sub(fsys, dir)
	if err != nil {
		panic(fmt.Sprintf("embedded %s: %v", dir, err))
	}
	return sub
}
