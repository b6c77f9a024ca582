package adminapi

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// DefaultURL is the admin listener of a forwarder on this host with the
// default admin.addr.
const DefaultURL = "http://localhost:9090"

// Client talks to a forwarder's admin listener. The zero value is not
// usable: BaseURL is required.
type Client struct {
	// BaseURL is the admin listener, such as DefaultURL.
	BaseURL string
	// Token is admin.token, sent as a Bearer token when not empty.
	Token string
	// Timeout bounds each request; 0 leaves it to ctx.
	Timeout time.Duration
	// HTTPClient sends the requests; nil uses http.DefaultClient.
	HTTPClient *http.Client
}

// Do sends a request with a JSON body (when not nil) and decodes a 200
// answer into out. It returns the raw answer as well; any other status is
// an error carrying the API's reason.
func (c *Client) Do(ctx context.Context, method, path string, body []byte, out any) ([]byte, error) {
	if c.Timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, c.Timeout)
		defer cancel()
	}
	if err := checkBaseURL(c.BaseURL); err != nil {
		return nil, err
	}
	req, err := http.NewRequestWithContext(ctx, method, strings.TrimRight(c.BaseURL, "/")+path, bytes.NewReader(body))
	if err != nil {
		return nil, fmt.Errorf("admin URL %q: %w", c.BaseURL, err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	// Trimmed as the forwarder trims admin.token: a token copied with its
	// newline would otherwise be no valid header value.
	if token := strings.TrimSpace(c.Token); token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	hc := c.HTTPClient
	if hc == nil {
		hc = http.DefaultClient
	}
	resp, err := hc.Do(req)
	if err != nil {
		return nil, fmt.Errorf("admin API: %w", err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, fmt.Errorf("admin API: read answer: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		var e ErrorAnswer
		isJSON := json.Unmarshal(raw, &e) == nil && e.Error != ""
		if !isJSON {
			e.Error = strings.TrimSpace(string(raw))
		}
		// The path asked for, under the base URL's own path if it has one.
		return raw, &StatusError{Method: method, Path: req.URL.RequestURI(), Status: resp.StatusCode, Reason: e.Error, JSON: isJSON}
	}
	if err := json.Unmarshal(raw, out); err != nil {
		return raw, fmt.Errorf("admin API: answer is not the expected JSON: %w", err)
	}
	return raw, nil
}

// checkBaseURL refuses a base URL that is not http:// or https:// and a
// host. "localhost:9090" would otherwise fail as an "unsupported protocol
// scheme "localhost"": it parses with the scheme localhost.
func checkBaseURL(base string) error {
	u, err := url.Parse(base)
	switch {
	case err == nil && (u.Scheme == "http" || u.Scheme == "https") && u.Host != "":
		return nil
	case !strings.Contains(base, "://"):
		return fmt.Errorf("admin URL %q has no scheme: include it, as in http://%s", base, strings.TrimPrefix(base, "//"))
	}
	return fmt.Errorf("admin URL %q must be http:// or https:// and a host, such as %s", base, DefaultURL)
}

// Replay posts req to POST /quarantine/replay.
func (c *Client) Replay(ctx context.Context, req ReplayRequest) (ReplayAnswer, []byte, error) {
	body, err := json.Marshal(req)
	if err != nil {
		return ReplayAnswer{}, nil, fmt.Errorf("replay request: %w", err)
	}
	var answer ReplayAnswer
	raw, err := c.Do(ctx, http.MethodPost, "/quarantine/replay", body, &answer)
	return answer, raw, err
}

// StatusError is returned by Do when the admin listener answers other than
// 200; Reason is the API's JSON reason (or the answer's text), as sent:
// print it escaped, it may echo unsigned values.
//
// Path is the request's path and query, the base URL's path included.
// JSON reports whether the answer was an ErrorAnswer, as every answer of
// the admin API is: a 404 without one comes from something else.
type StatusError struct {
	Method, Path string
	Status       int
	Reason       string
	JSON         bool
}

func (e *StatusError) Error() string {
	return fmt.Sprintf("admin API: %s %s: %d %s", e.Method, e.Path, e.Status, e.Reason)
}
