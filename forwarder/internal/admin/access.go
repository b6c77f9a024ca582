package admin

import (
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"strings"

	"github.com/zautic/zautic-forwarder/forwarder/adminapi"
	"github.com/zautic/zautic-forwarder/forwarder/internal/telemetry"
)

// openAdminPaths hold no data: they stay open to anyone. Everything else
// is guarded, so that a route added later is protected unless it is listed
// here.
var openAdminPaths = map[string]bool{"/": true, "/healthz": true, "/readyz": true, "/metrics": true, "/overview": true}

func isOpenAdminPath(path string) bool {
	return openAdminPaths[path] || strings.HasPrefix(path, "/static/")
}

// maxHostShown bounds the Host a 403 repeats.
const maxHostShown = 64

// guardAdmin protects every path but the open ones. With a token
// configured, the token is required from anywhere, and Host is not checked:
// a page that rebinds its name to this listener cannot send a token it does
// not know. Without one, only a client on loopback (where a kubectl
// port-forward arrives) that names the listener localhost, 127.0.0.1 or
// [::1] is served: the address keeps the network out, the Host keeps out a
// page in the operator's browser whose name was rebound to 127.0.0.1.
func guardAdmin(token *adminToken, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if isOpenAdminPath(r.URL.Path) {
			next.ServeHTTP(w, r)
			return
		}
		if token.Required() {
			if err := token.check(r); err != nil {
				w.Header().Set("WWW-Authenticate", `Bearer realm="zautic-forwarder admin"`)
				telemetry.WriteJSON(w, http.StatusUnauthorized, adminapi.ErrorAnswer{Error: err.Error()})
				return
			}
			next.ServeHTTP(w, r)
			return
		}
		if reason := localOnly(r); reason != "" {
			telemetry.WriteJSON(w, http.StatusForbidden, adminapi.ErrorAnswer{Error: reason})
			return
		}
		next.ServeHTTP(w, r)
	})
}

// localOnly returns why r may not reach a guarded path without a token, or
// "" when it may: it comes from loopback and names a loopback Host.
func localOnly(r *http.Request) string {
	if !fromLoopback(r.RemoteAddr) {
		return "forbidden: admin.token is not set, so this path answers only clients on loopback " +
			"(kubectl port-forward arrives there); set admin.token to reach it from elsewhere"
	}
	if !loopbackHost(r.Host) {
		return fmt.Sprintf("forbidden: admin.token is not set, so this path answers only Host localhost, 127.0.0.1 or [::1] "+
			"(a guard against DNS rebinding), got Host %.*q; open the page as http://localhost:<port>/ or set admin.token", maxHostShown, r.Host)
	}
	return ""
}

// fromLoopback reports whether remoteAddr ("ip:port") is in 127.0.0.0/8 or
// ::1, an IPv4-mapped loopback address included.
func fromLoopback(remoteAddr string) bool {
	ap, err := netip.ParseAddrPort(remoteAddr)
	if err != nil {
		return false
	}
	return ap.Addr().Unmap().IsLoopback()
}

// loopbackHost reports whether a Host header names localhost, 127.0.0.1 or
// [::1], with or without a port. Only these three: another name of
// 127.0.0.1 is what a rebinding page uses.
func loopbackHost(host string) bool {
	name, port, err := net.SplitHostPort(host)
	if err != nil {
		// No port: "localhost", "127.0.0.1" or "[::1]"; a bare ::1 is not a
		// Host, so the IPv6 form must keep its brackets.
		name = host
		if inner, ok := strings.CutPrefix(host, "["); ok {
			if name, ok = strings.CutSuffix(inner, "]"); !ok {
				return false
			}
		} else if host == "::1" {
			return false
		}
	} else if !isPort(port) {
		return false
	}
	return strings.EqualFold(name, "localhost") || name == "127.0.0.1" || name == "::1"
}

func isPort(s string) bool {
	if s == "" || len(s) > 5 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}
