package main

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/zautic/zautic-forwarder/forwarder/adminapi"
)

// The admin commands (quarantine, deliveries) talk to a forwarder's admin
// listener through an adminapi.Client configured by these flags.

// adminTokenEnv is where the admin commands find admin.token by default.
const adminTokenEnv = envPrefix + "_ADMIN_TOKEN"

// adminClient is the flags of an admin command and the client they make.
type adminClient struct {
	api  adminapi.Client
	json bool
}

// tokenSource names where the token of the commands comes from, for their
// answer to a 401.
func (a *adminClient) tokenSource() string {
	if strings.TrimSpace(a.api.Token) != "" {
		return "--token"
	}
	if strings.TrimSpace(os.Getenv(adminTokenEnv)) != "" {
		return "$" + adminTokenEnv
	}
	return ""
}

func (a *adminClient) flags(cmd *cobra.Command) {
	cmd.Flags().StringVar(&a.api.BaseURL, "admin-url", adminapi.DefaultURL, "the forwarder's admin listener")
	cmd.Flags().StringVar(&a.api.Token, "token", "", "admin.token, when the forwarder requires one (default $"+adminTokenEnv+")")
	cmd.Flags().DurationVar(&a.api.Timeout, "timeout", 2*time.Minute, "timeout of the request")
	cmd.Flags().BoolVar(&a.json, "json", false, "print the answer as JSON")
}

// client is the API client with the token from the environment when the
// flag leaves it empty.
func (a *adminClient) client() *adminapi.Client {
	c := a.api
	c.Token = cmp.Or(strings.TrimSpace(c.Token), os.Getenv(adminTokenEnv))
	return &c
}

// explain turns an error of the admin API into one for the command line:
// a 401 says how to give the token, and the API's reason is escaped.
func (a *adminClient) explain(err error) error {
	var status *adminapi.StatusError
	if !errors.As(err, &status) {
		return err
	}
	// Escaped like every unsigned value, quotes aside: the reason is prose.
	parts := strings.Split(status.Reason, `"`)
	for i, part := range parts {
		parts[i] = plain(part)
	}
	reason := strings.Join(parts, `"`)
	if status.Status == http.StatusUnauthorized {
		// The API's reason speaks HTTP; this one speaks command line.
		reason = "the forwarder requires its admin.token: pass --token or set $" + adminTokenEnv
		if from := a.tokenSource(); from != "" {
			reason = "the token of " + from + " is not the forwarder's admin.token"
		}
	}
	if status.Status == http.StatusNotFound && (!status.JSON || strings.HasPrefix(status.Reason, "no route for ")) {
		// The admin listener answers every path the commands ask for, and
		// never "no route for", which is the webhook port's answer.
		reason = strings.TrimSpace(reason + " (" + a.api.BaseURL + " may not be the forwarder's admin listener, " +
			"admin.addr, :9090 by default: the webhook port, say, answers 404 to these paths)")
	}
	return fmt.Errorf("admin API: %s %s: %d %s", status.Method, status.Path, status.Status, reason)
}

// show GETs path from the admin API and prints the answer with table, or
// as the API's JSON with --json.
func show[T any](ctx context.Context, a *adminClient, w io.Writer, path string, table func(io.Writer, T) error) error {
	var answer T
	raw, err := a.client().Do(ctx, http.MethodGet, path, nil, &answer)
	if err != nil {
		return a.explain(err)
	}
	if a.json {
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
