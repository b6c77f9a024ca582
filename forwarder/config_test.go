package forwarder

import (
	"strings"
	"testing"
)

// TestValidateHTTPPath: http.path is a literal path like an endpoint's, and
// the error names the key, quotes the value and says what is allowed.
func TestValidateHTTPPath(t *testing.T) {
	tests := []struct {
		path string
		want string // in the error; "" when valid
	}{
		{"/webhooks/zautic", ""},
		{"/", ""},
		{"/webhooks/*", `http.path "/webhooks/*" has '*', which would make it a route pattern`},
		{"/webhooks/:account", `http.path "/webhooks/:account" has ':'`},
		{"/a/../webhooks/zautic", `http.path "/a/../webhooks/zautic" has a ".." segment`},
		{"/a?x=1", `has '?', which would end the path`},
		{"/a//b", "has an empty segment"},
		{"/webhooks/zautic/", "has an empty segment"},
		{"webhooks", "must start with /"},
	}
	for _, tt := range tests {
		t.Run(tt.path, func(t *testing.T) {
			c := DefaultConfig()
			c.HTTP.Path = tt.path
			err := c.Validate()
			switch {
			case tt.want == "" && err != nil:
				t.Errorf("got %v, want valid", err)
			case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want) || !strings.Contains(err.Error(), "A-Z a-z 0-9 . _ ~ -")):
				t.Errorf("got %v, want an error saying %q and what is allowed", err, tt.want)
			}
		})
	}
}

// TestValidateListenerPorts: http.addr and admin.addr may not take one
// port on hosts that overlap; the error names both keys.
func TestValidateListenerPorts(t *testing.T) {
	tests := []struct {
		http, admin string
		clash       bool
	}{
		{":8080", ":8080", true},
		{":8080", "127.0.0.1:8080", true},
		{"127.0.0.1:8080", "0.0.0.0:8080", true},
		{"[::]:8080", "127.0.0.1:8080", true},
		{"127.0.0.1:8080", "127.0.0.1:8080", true},
		{"[::1]:8080", "[0:0:0:0:0:0:0:1]:8080", true},
		{":8080", ":9090", false},
		{"127.0.0.1:8080", "127.0.0.2:8080", false},
		{"127.0.0.1:0", "127.0.0.1:0", false},
		{":0", ":0", false},
		{":8080", "", false},
	}
	for _, tt := range tests {
		t.Run(tt.http+" "+tt.admin, func(t *testing.T) {
			c := DefaultConfig()
			c.HTTP.Addr, c.Admin.Addr = tt.http, tt.admin
			err := c.Validate()
			switch {
			case !tt.clash && err != nil:
				t.Errorf("got %v, want valid", err)
			case tt.clash && (err == nil || !strings.Contains(err.Error(), "admin.addr") || !strings.Contains(err.Error(), "http.addr")):
				t.Errorf("got %v, want an error naming admin.addr and http.addr", err)
			}
		})
	}
}
