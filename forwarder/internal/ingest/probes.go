package ingest

import (
	"net/http"

	"github.com/labstack/echo/v4"

	"github.com/zautic/zautic-forwarder/forwarder/internal/telemetry"
)

// AddProbes serves GET /healthz and GET /readyz on the webhook port too, for
// the kubelet: probes there share the webhook port's connection ceiling,
// the one that protects the hot path, so nothing on the admin port (a flood
// of connections filling admin.max_connections, slow lookups) can make them
// time out and take a healthy pod out of the Service or restart it. The port
// faces the internet, so the answers say only whether the forwarder is
// ready; the admin port's /readyz names the cause.
func AddProbes(e *echo.Echo, ready telemetry.Readiness) {
	e.GET("/healthz", func(c echo.Context) error {
		return c.JSONBlob(http.StatusOK, []byte(`{"status":"ok"}`+"\n"))
	})
	e.GET("/readyz", func(c echo.Context) error {
		if ready.Ready() != nil {
			return c.JSONBlob(http.StatusServiceUnavailable, []byte(`{"status":"not ready"}`+"\n"))
		}
		return c.JSONBlob(http.StatusOK, []byte(`{"status":"ready"}`+"\n"))
	})
}
