package admin

import (
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	"go.uber.org/zap/zaptest"

	"github.com/zautic/zautic-forwarder/internal/natstest"
)

func bearer(token string) *http.Request {
	r, _ := http.NewRequest(http.MethodGet, "/deliveries", nil)
	if token != "" {
		r.Header.Set("Authorization", "Bearer "+token)
	}
	return r
}

func writeToken(t *testing.T, token string) string {
	t.Helper()
	file := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(file, []byte(token+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return file
}

// TestAdminTokenCheck checks each way a request can carry, or miss, the
// token.
func TestAdminTokenCheck(t *testing.T) {
	token, err := newAdminToken(Config{Token: "s3cret"}, zaptest.NewLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	open, err := newAdminToken(Config{}, zaptest.NewLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	both, err := newAdminToken(Config{Token: "fixed", TokenFile: writeToken(t, "from-file")}, zaptest.NewLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	padded, err := newAdminToken(Config{Token: " s3cret\n"}, zaptest.NewLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	basic := bearer("")
	basic.SetBasicAuth("admin", "s3cret")
	withScheme := func(scheme, token string) *http.Request {
		r := bearer("")
		r.Header.Set("Authorization", scheme+" "+token)
		return r
	}
	tests := []struct {
		name  string
		token *adminToken
		req   *http.Request
		want  error
	}{
		{"right token", token, bearer("s3cret"), nil},
		{"no header", token, bearer(""), errAdminTokenMissing},
		{"wrong token", token, bearer("s3cre"), errAdminTokenWrong},
		{"longer token", token, bearer("s3cret2"), errAdminTokenWrong},
		{"basic auth", token, basic, errAdminTokenMissing},
		{"scheme in lower case", token, withScheme("bearer", "s3cret"), nil},
		{"scheme in upper case", token, withScheme("BEARER", "s3cret"), nil},
		{"scheme in lower case, wrong token", token, withScheme("bearer", "s3cre"), errAdminTokenWrong},
		{"scheme and token apart by two spaces", token, withScheme("Bearer", " s3cret"), nil},
		{"another scheme", token, withScheme("Token", "s3cret"), errAdminTokenMissing},
		{"scheme glued to the token", token, withScheme("Bearers3cret", ""), errAdminTokenMissing},
		{"no token configured", open, bearer(""), nil},
		{"admin.token with a file too", both, bearer("fixed"), nil},
		{"admin.token_file with a token too", both, bearer("from-file"), nil},
		{"neither of both", both, bearer("other"), errAdminTokenWrong},
		{"admin.token with white space around it", padded, bearer("s3cret"), nil},
		{"admin.token with white space, presented as set", padded, bearer(" s3cret"), nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.token.check(tt.req); got != tt.want {
				t.Errorf("got %v, want %v", got, tt.want)
			}
		})
	}
}

// TestAdminTokenFile: an unreadable or empty file stops the start; a
// rotated file takes effect; a file that turns unreadable keeps the token
// in use.
func TestAdminTokenFile(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "token")
	log := zaptest.NewLogger(t)
	if _, err := newAdminToken(Config{TokenFile: file}, log); err == nil {
		t.Fatal("missing token file: got no error, want one")
	}
	if err := os.WriteFile(file, []byte("\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := newAdminToken(Config{TokenFile: file}, log); err == nil {
		t.Fatal("empty token file: got no error, want one")
	}
	if err := os.WriteFile(file, []byte("first\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	token, err := newAdminToken(Config{TokenFile: file}, log)
	if err != nil {
		t.Fatal(err)
	}
	if err := token.check(bearer("first")); err != nil {
		t.Fatalf("first token: got %v, want nil", err)
	}
	if err := os.WriteFile(file, []byte("second"), 0o600); err != nil {
		t.Fatal(err)
	}
	natstest.CheckFor(t, 5*time.Second, 50*time.Millisecond, func() error { return token.check(bearer("second")) })
	if err := os.Remove(file); err != nil {
		t.Fatal(err)
	}
	token.mu.Lock()
	token.readAt = time.Time{} // the next check re-reads, and fails
	token.mu.Unlock()
	if err := token.check(bearer("second")); err != nil {
		t.Errorf("after the file vanished: got %v, want the token in use kept", err)
	}
}

func TestScanStart(t *testing.T) {
	tests := []struct {
		first, end, size, want uint64
	}{
		{1, 100, 10, 91},
		{1, 5, 10, 1},
		{50, 60, 20, 50},
		{1, 10, 10, 1},
		{1, 0, 10, 1},
	}
	for _, tt := range tests {
		if got := scanStart(tt.first, tt.end, tt.size); got != tt.want {
			t.Errorf("scanStart(%d, %d, %d): got %d, want %d", tt.first, tt.end, tt.size, got, tt.want)
		}
	}
}
