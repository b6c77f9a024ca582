package ingest

import (
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/zautic/zautic-forwarder/forwarder/adminapi"
	"github.com/zautic/zautic-forwarder/forwarder/internal/telemetry"
	"go.uber.org/zap"
)

// HTTPConfig configures the webhook listener.
type HTTPConfig struct {
	Addr              string        `yaml:"addr"`
	Path              string        `yaml:"path"`
	MaxBodyBytes      int64         `yaml:"max_body_bytes"`
	MaxHeaderBytes    int           `yaml:"max_header_bytes"`
	MaxInFlight       int           `yaml:"max_in_flight"`
	MaxBodyMemory     int64         `yaml:"max_body_memory"`
	MaxConnections    int           `yaml:"max_connections"`
	MinBodyRate       int64         `yaml:"min_body_rate"`
	ShutdownTimeout   time.Duration `yaml:"shutdown_timeout"`
	ReadHeaderTimeout time.Duration `yaml:"read_header_timeout"`
	ReadTimeout       time.Duration `yaml:"read_timeout"`
	WriteTimeout      time.Duration `yaml:"write_timeout"`
	IdleTimeout       time.Duration `yaml:"idle_timeout"`
}

// DefaultHTTPConfig returns the http section's defaults.
func DefaultHTTPConfig() HTTPConfig {
	return HTTPConfig{
		Addr:              ":8080",
		Path:              "/webhooks/zautic",
		MaxBodyBytes:      256 << 10,
		MaxHeaderBytes:    16 << 10,
		MaxInFlight:       1024,
		MaxBodyMemory:     64 << 20,
		MaxConnections:    1024,
		MinBodyRate:       1024,
		ShutdownTimeout:   20 * time.Second,
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      30 * time.Second,
		IdleTimeout:       120 * time.Second,
	}
}

// headerSlack is how far net/http's header limit sits above
// http.max_header_bytes: enough for the request line and for headers a
// little over the limit to reach limitHeaderBytes, which answers 431 with a
// JSON reason. Headers beyond it get net/http's own plain-text 431 and a
// closed connection, before any handler runs; each connection holds at most
// that much of headers.
const headerSlack = 4 << 10

// NewServer returns the Echo instance of the internet-facing port:
// the webhook route and nothing else.
func NewServer(cfg HTTPConfig, h *Handler, m *telemetry.Metrics) *echo.Echo {
	return NewRoutedServer(cfg, []Route{{Path: cfg.Path, Handler: h, Metrics: m}}, m)
}

// NewRoutedServer returns the Echo instance of the internet-facing port
// with one webhook route per endpoint and nothing else. The routes share
// the port's limits (http.max_in_flight, http.max_body_memory); each counts
// its early rejections in its own metrics. m records the port's gauges.
func NewRoutedServer(cfg HTTPConfig, routes []Route, m *telemetry.Metrics) *echo.Echo {
	e := echo.New()
	e.HideBanner, e.HidePort = true, true
	ids := newRequestIDs()
	// Every answer carries an X-Request-Id: the webhook routes' from their
	// middleware, wrapped here once like the limits (Echo would wrap route
	// middleware, and apply Use middleware, anew on every request); routing
	// errors (404, 405) from the error handler.
	e.HTTPErrorHandler = func(err error, c echo.Context) {
		if c.Response().Header()[echo.HeaderXRequestID] == nil {
			ids.set(c)
		}
		jsonErrorHandler(err, c)
	}
	slots, budget := make(chan struct{}, cfg.MaxInFlight), newBodyBudget(cfg.MaxBodyMemory, m)
	for _, r := range routes {
		e.POST(r.Path, ids.middleware(limitInFlight(slots, r.Metrics)(limitHeaderBytes(cfg.MaxHeaderBytes, r.Metrics)(limitBodyMemory(cfg, budget, r.Metrics)(r.Handler.Handle)))))
		// Echo answers OPTIONS on a routed path itself, 204 with Allow; the path
		// takes POST only, like every other method.
		e.OPTIONS(r.Path, func(c echo.Context) error {
			c.Response().Header().Set(echo.HeaderAllow, http.MethodPost)
			return echo.ErrMethodNotAllowed
		})
	}
	return e
}

// NewHTTPServer wraps handler with the timeouts of cfg, so that a slow or
// stalled client cannot hold a connection forever.
func NewHTTPServer(cfg HTTPConfig, handler http.Handler, log *zap.Logger) *http.Server {
	return &http.Server{
		Handler:           handler,
		ReadHeaderTimeout: cfg.ReadHeaderTimeout,
		ReadTimeout:       cfg.ReadTimeout,
		WriteTimeout:      cfg.WriteTimeout,
		IdleTimeout:       cfg.IdleTimeout,
		MaxHeaderBytes:    cfg.MaxHeaderBytes + headerSlack,
		ErrorLog:          zap.NewStdLog(log.Named("http")),
	}
}

// jsonErrorHandler answers every Echo error as {"error": "..."}; routing
// errors (404, 405) included.
func jsonErrorHandler(err error, c echo.Context) {
	if c.Response().Committed {
		return
	}
	status, msg := http.StatusInternalServerError, err.Error()
	var he *echo.HTTPError
	if errors.As(err, &he) {
		status, msg = he.Code, fmt.Sprint(he.Message)
	}
	switch status {
	case http.StatusMethodNotAllowed:
		msg = fmt.Sprintf("method %s not allowed on %s; Zautic webhooks are POST", c.Request().Method, c.Request().URL.Path)
	case http.StatusNotFound:
		msg = fmt.Sprintf("no route for %s", c.Request().URL.Path)
	}
	if c.Request().Method == http.MethodHead {
		_ = c.NoContent(status)
		return
	}
	_ = c.JSON(status, adminapi.ErrorAnswer{Error: msg})
}

// limitInFlight answers 429 at once, before the body is read, when
// cap(slots) requests are already in progress.
func limitInFlight(slots chan struct{}, m *telemetry.Metrics) echo.MiddlewareFunc {
	max := cap(slots)
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			select {
			case slots <- struct{}{}:
			default:
				return rejectEarly(c, m, fmt.Errorf("%w: %d requests in flight", errOverloaded, max))
			}
			m.AddInFlight(1)
			defer func() {
				<-slots
				m.AddInFlight(-1)
			}()
			return next(c)
		}
	}
}

// limitHeaderBytes answers 431 when the request's headers, counted as they
// travel ("Name: value\r\n"), exceed max bytes.
func limitHeaderBytes(max int, m *telemetry.Metrics) echo.MiddlewareFunc {
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			size := 0
			for name, values := range c.Request().Header {
				for _, v := range values {
					size += len(name) + len(v) + 4
				}
			}
			if size > max {
				return rejectEarly(c, m, &headerSizeError{size: size, max: max})
			}
			return next(c)
		}
	}
}

// headerSizeError says how large the headers were; it is errHeadersTooLarge.
type headerSizeError struct{ size, max int }

func (e *headerSizeError) Error() string {
	return "request headers are " + strconv.Itoa(e.size) + " bytes, more than " + strconv.Itoa(e.max)
}

func (e *headerSizeError) Unwrap() error { return errHeadersTooLarge }

// rejectEarly counts and answers a request refused before the handler.
func rejectEarly(c echo.Context, m *telemetry.Metrics, err error) error {
	r := classify(err)
	m.Request(r.outcome, r.reason, 0)
	return answerError(c, err, false)
}
