package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"
)

// The admin commands (quarantine, deliveries) talk to a forwarder's admin
// listener through adminClient.

// defaultAdminURL is the admin listener of a forwarder on this host with
// the default admin.addr.
const defaultAdminURL = "http://localhost:9090"

// adminClient talks to a forwarder's admin listener.
type adminClient struct {
	base    string
	token   string
	timeout time.Duration
	json    bool
}

// adminTokenEnv is where the admin commands find admin.token by default.
const adminTokenEnv = envPrefix + "_ADMIN_TOKEN"

func (a *adminClient) flags(cmd *cobra.Command) {
	cmd.Flags().StringVar(&a.base, "admin-url", defaultAdminURL, "the forwarder's admin listener")
	cmd.Flags().StringVar(&a.token, "token", "", "admin.token, when the forwarder requires one (default $"+adminTokenEnv+")")
	cmd.Flags().DurationVar(&a.timeout, "timeout", 2*time.Minute, "timeout of the request")
	cmd.Flags().BoolVar(&a.json, "json", false, "print the answer as JSON")
}

// do sends a request with a JSON body (when not nil) and decodes a 200
// answer into out. It returns the raw answer; a non-200 is an error
// carrying the API's reason.
func (a *adminClient) do(ctx context.Context, method, path string, body []byte, out any) ([]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, a.timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, strings.TrimRight(a.base, "/")+path, bytes.NewReader(body))
	if err != nil {
		return nil, fmt.Errorf("--admin-url: %w", err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	// Trimmed as the forwarder trims admin.token: a token copied with its
	// newline would otherwise be no valid header value.
	token, from := strings.TrimSpace(a.token), "--token"
	if token == "" {
		token, from = strings.TrimSpace(os.Getenv(adminTokenEnv)), "$"+adminTokenEnv
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, fmt.Errorf("admin API: %w", err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, fmt.Errorf("admin API: read answer: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		var e struct {
			Error string `json:"error"`
		}
		if json.Unmarshal(raw, &e) != nil || e.Error == "" {
			e.Error = strings.TrimSpace(string(raw))
		}
		if resp.StatusCode == http.StatusUnauthorized {
			// The API's reason speaks HTTP; this one speaks command line.
			e.Error = "the forwarder requires its admin.token: pass --token or set $" + adminTokenEnv
			if token != "" {
				e.Error = "the token of " + from + " is not the forwarder's admin.token"
			}
		}
		return raw, fmt.Errorf("admin API: %s %s: %d %s", method, path, resp.StatusCode, plain(e.Error))
	}
	if err := json.Unmarshal(raw, out); err != nil {
		return raw, fmt.Errorf("admin API: answer is not the expected JSON: %w", err)
	}
	return raw, nil
}

// show GETs path from the admin API and prints the answer with table, or
// as the API's JSON with --json.
func show[T any](ctx context.Context, client *adminClient, w io.Writer, path string, table func(io.Writer, T) error) error {
	var answer T
	raw, err := client.do(ctx, http.MethodGet, path, nil, &answer)
	if err != nil {
		return err
	}
	if client.json {
		return printIndented(w, raw)
	}
	return table(w, answer)
}

func printIndented(w io.Writer, raw []byte) error {
	var out bytes.Buffer
	if err := json.Indent(&out, raw, "", "  "); err != nil {
		return fmt.Errorf("admin API answer is not JSON: %w", err)
	}
	out.WriteByte('\n')
	_, err := out.WriteTo(w)
	return err
}
