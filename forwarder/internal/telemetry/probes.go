package telemetry

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/http/pprof"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/zautic/zautic-forwarder/forwarder/adminapi"
)

// Readiness is what /readyz asks: the webhook path's readiness, which must
// not touch the network.
type Readiness interface {
	Ready() error
}

// NewProbes serves /healthz, /readyz, /metrics and, with pprof,
// /debug/pprof/, and the routes each of routes adds (the admin listener's
// quarantine API).
func NewProbes(withPprof bool, ready Readiness, gatherer prometheus.Gatherer, routes ...func(*http.ServeMux)) http.Handler {
	mux := http.NewServeMux()
	for _, add := range routes {
		add(mux)
	}
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		WriteJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, _ *http.Request) {
		if err := ready.Ready(); err != nil {
			WriteJSON(w, http.StatusServiceUnavailable, adminapi.ErrorAnswer{Error: err.Error()})
			return
		}
		WriteJSON(w, http.StatusOK, map[string]string{"status": "ready"})
	})
	mux.Handle("GET /metrics", promhttp.HandlerFor(gatherer, promhttp.HandlerOpts{
		// Exemplars (the trace id of a request_duration_seconds observation)
		// exist only in the OpenMetrics format, served when the scraper asks.
		EnableOpenMetrics: true,
	}))
	if withPprof {
		mux.HandleFunc("/debug/pprof/", pprof.Index)
		mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
		mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
		mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
		mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	}
	return mux
}

// WriteJSON writes v as the JSON answer with status. It encodes v before
// it writes the status: when v cannot be encoded (a time.Time after year
// 9999, say), the answer is a 500 that says why, never status with an
// empty or truncated body.
func WriteJSON(w http.ResponseWriter, status int, v any) {
	var buf bytes.Buffer
	if err := json.NewEncoder(&buf).Encode(v); err != nil {
		buf.Reset()
		_ = json.NewEncoder(&buf).Encode(adminapi.ErrorAnswer{Error: "encode the answer: " + err.Error()})
		status = http.StatusInternalServerError
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write(buf.Bytes())
}
