package test

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	cdplog "github.com/chromedp/cdproto/log"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/zautic/zautic-forwarder/internal/natstest"
	"github.com/zautic/zautic-forwarder/zautic"
)

// screenshotEnv names the file the browser test writes the page's
// screenshot to, for the README: SCREENSHOT=../docs/delivery-inspector.png.
const screenshotEnv = "SCREENSHOT"

// chromiumNames are the browser commands the browser test looks for; Debian
// calls its package and command chromium.
var chromiumNames = []string{"chromium", "chromium-browser", "google-chrome", "google-chrome-stable", "headless-shell"}

// findChromium returns the browser's path, or skips the test saying how to
// get one. CI installs Debian's chromium, so it always runs there.
func findChromium(t *testing.T) string {
	t.Helper()
	for _, name := range chromiumNames {
		if path, err := exec.LookPath(name); err == nil {
			return path
		}
	}
	t.Skipf("no Chromium found (looked for %s in PATH): install it (apt-get install chromium) to run the browser test", strings.Join(chromiumNames, ", "))
	return ""
}

// browser is a headless Chromium tab that records every console error,
// uncaught exception and error log entry (a failed load, a CSP violation).
type browser struct {
	ctx context.Context

	mu     sync.Mutex
	errors []string
}

func newBrowser(t *testing.T) *browser {
	t.Helper()
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(findChromium(t)),
		chromedp.NoSandbox, // CI runs as root, where Chromium's sandbox refuses to start
		chromedp.WindowSize(1366, 900),
		chromedp.UserDataDir(t.TempDir()),
	)
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancelTab := chromedp.NewContext(allocCtx)
	ctx, cancelTimeout := context.WithTimeout(ctx, 2*time.Minute)
	t.Cleanup(func() {
		cancelTimeout()
		cancelTab()
		cancelAlloc()
	})
	b := &browser{ctx: ctx}
	if err := chromedp.Listen(ctx, b.record); err != nil {
		t.Fatalf("start Chromium: %v", err)
	}
	return b
}

func (b *browser) record(ev any) {
	var msg string
	switch ev := ev.(type) {
	case *runtime.EventConsoleAPICalled:
		if ev.Type != runtime.ConsoleAPICalledTypeError {
			return
		}
		var args []string
		for _, a := range ev.Args {
			args = append(args, string(a.Value)+a.Description)
		}
		msg = "console.error: " + strings.Join(args, " ")
	case *runtime.EventExceptionThrown:
		msg = "exception: " + ev.ExceptionDetails.Text + exceptionDescription(ev.ExceptionDetails)
	case *cdplog.EventEntryAdded:
		if ev.Entry.Level != cdplog.EntryLevelError {
			return
		}
		msg = fmt.Sprintf("log %s: %s %s", ev.Entry.Source, ev.Entry.Text, ev.Entry.URL)
	default:
		return
	}
	b.mu.Lock()
	b.errors = append(b.errors, msg)
	b.mu.Unlock()
}

// consoleErrors returns the errors recorded so far.
func (b *browser) consoleErrors() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]string(nil), b.errors...)
}

// do runs the actions and fails the test with what the page shows when one
// fails.
func (b *browser) do(t *testing.T, what string, actions ...chromedp.Action[chromedp.Void]) {
	t.Helper()
	if err := chromedp.Do(b.ctx, actions...); err != nil {
		body, _ := chromedp.Run(b.ctx, chromedp.Evaluate[string](`document.body ? document.body.innerText : ''`))
		t.Fatalf("%s: %v\npage text:\n%s\nconsole errors: %v", what, err, trimmed(body), b.consoleErrors())
	}
}

// waitFor polls the JavaScript condition in the page for up to 20s.
func waitFor(condition string) chromedp.Action[chromedp.Void] {
	return chromedp.Poll[chromedp.Void](condition, chromedp.WithPollingTimeout(20*time.Second))
}

// evaluate returns the value of a JavaScript expression in the page.
func evaluate[T any](t *testing.T, b *browser, expression string) T {
	t.Helper()
	v, err := chromedp.Run(b.ctx, chromedp.Evaluate[T](expression))
	if err != nil {
		t.Fatalf("evaluate %s: %v", expression, err)
	}
	return v
}

// sendAll runs the binary's "send --type all": the 23 documented types.
func sendAll(t *testing.T, p *forwarderProcess) {
	t.Helper()
	cmd := exec.Command(binary, "send", "--type", "all", "--secret", testSecret, "--url", p.WebhookURL)
	cmd.Env = []string{"PATH=" + os.Getenv("PATH")}
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("send --type all: %v\n%s", err, out)
	}
}

// TestInspectorPageInBrowser drives the admin page in headless Chromium:
// it loads without a console error, lists the 23 deliveries of
// "send --type all", finds one and shows its payload, keeps the search
// through a refresh, shows quarantined deliveries with their reasons, and
// its replay buttons publish each exactly once.
func TestInspectorPageInBrowser(t *testing.T) {
	b := newBrowser(t)
	ns := natstest.Start(t, "", 0)
	secretsFile := filepath.Join(t.TempDir(), "secrets")
	if err := os.WriteFile(secretsFile, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	env := forwarderEnv(ns.ClientURL())
	env["FORWARDER_WEBHOOK_SECRETS_FILE"] = secretsFile
	env["FORWARDER_QUARANTINE_AUTO_REPLAY"] = "false" // the button must be what replays
	p := startForwarder(t, env)
	p.WaitReady(t)
	sendAll(t, p)
	_, js := connect(t, ns.ClientURL())
	msgs := streamMessages(t, js, "ZAUTIC")
	if len(msgs) != len(zautic.DocumentedTypes()) {
		t.Fatalf("stream holds %d messages, want %d", len(msgs), len(zautic.DocumentedTypes()))
	}
	picked := msgs[7].Headers()

	b.do(t, "load the page", chromedp.Navigate(p.AdminURL+"/"),
		waitFor(`document.querySelectorAll('#deliveries tbody tr[data-seq]').length === 23`),
		waitFor(`document.querySelector('#ready').textContent === 'ready'`),
		waitFor(`document.querySelector('[data-outcome=published] dd').textContent === '23'`))
	ids := evaluate[[]string](t, b, `[...document.querySelectorAll('#deliveries tbody tr td:nth-child(4)')].map(td => td.textContent)`)
	if len(ids) != 23 || !strings.HasPrefix(ids[0], "dlv_") || len(ids[0]) != len(picked.Get(zautic.MessageDeliveryIDHeader)) {
		t.Errorf("delivery id column: got %q, want 23 full delivery ids", ids)
	}

	deliveryID, eventID := picked.Get(zautic.MessageDeliveryIDHeader), picked.Get(zautic.MessageEventIDHeader)
	b.do(t, "search a delivery and show its payload",
		chromedp.SetValue(chromedp.CSS("#search-input"), deliveryID),
		chromedp.Click(chromedp.CSS("#search-form button")),
		waitFor(`document.querySelector('#search-result [data-field=status]')?.textContent === 'published'`),
		chromedp.Click(chromedp.CSS("#show-payload")),
		waitFor(`!document.querySelector('#payload').hidden`))
	if got := evaluate[string](t, b, `document.querySelector('#search-result [data-field=event_id]').textContent`); got != eventID {
		t.Errorf("search result event id: got %q, want %q", got, eventID)
	}
	if got := evaluate[string](t, b, `document.querySelector('#payload').textContent`); !strings.Contains(got, `"id": "`+eventID+`"`) {
		t.Errorf("payload: got %q, want the event's body", got)
	}

	b.do(t, "filter by type and keep the search through a refresh",
		selectType("message.read"),
		waitFor(`document.querySelectorAll('#deliveries tbody tr[data-seq]').length === 1`),
		waitFor(`document.querySelector('#updated').textContent.startsWith('updated') && performance.now() > 6000`))
	if got := evaluate[string](t, b, `document.querySelector('#search-input').value`); got != deliveryID {
		t.Errorf("search after a refresh: got %q, want %q", got, deliveryID)
	}
	if got := evaluate[bool](t, b, `!document.querySelector('#payload').hidden`); !got {
		t.Errorf("payload hidden after a refresh, want it still shown")
	}
	b.do(t, "back to every type", selectType(""),
		waitFor(`document.querySelectorAll('#deliveries tbody tr[data-seq]').length === 23`))

	checkQuarantineReplay(t, b, p, js, secretsFile)
	if errs := b.consoleErrors(); len(errs) > 0 {
		t.Errorf("console errors: %q", errs)
	}
}

// selectType picks a type in the filter as a user does.
func selectType(eventType string) chromedp.Action[chromedp.Void] {
	return chromedp.Evaluate[chromedp.Void](fmt.Sprintf(
		`(() => { const f = document.querySelector('#type-filter'); f.value = %q; f.dispatchEvent(new Event('change')); })()`, eventType))
}

// checkQuarantineReplay quarantines a delivery signed with a secret the
// forwarder learns only later and one signed too long ago, checks that the
// page shows both with their reasons, then replays them with their buttons:
// the stale one after a confirmation, with ignore_tolerance. Each reaches
// the stream exactly once. The screenshot is taken with both on the page.
func checkQuarantineReplay(t *testing.T, b *browser, p *forwarderProcess, js jetstream.JetStream, secretsFile string) {
	t.Helper()
	const laterSecret = "later-secret-9d2e"
	quarantineDelivery(t, p, "evt_quar_page", "dlv_quar_page", laterSecret)
	stale := sampleEvent("evt_stale_page", "message.read")
	old := time.Now().Add(-time.Hour).Unix()
	if got := send(t, p.WebhookURL, webhook{body: stale, deliveryID: "dlv_stale_page", signature: zautic.Sign([]byte(testSecret), old, stale),
		headers: map[string]string{"X-Zautic-Event": "message.read"}}); got.Status != http.StatusBadRequest {
		t.Fatalf("stale delivery: got %d %v, want 400", got.Status, got.Body)
	}
	b.do(t, "see both quarantined",
		waitFor(`document.querySelectorAll('#quarantine tbody tr[data-seq]').length === 2`),
		chromedp.SetValue(chromedp.CSS("#search-input"), "dlv_quar_page"),
		chromedp.Click(chromedp.CSS("#search-form button")),
		waitFor(`document.querySelector('#search-result [data-field=status]')?.textContent === 'quarantined'`))
	reasons := evaluate[[]string](t, b, `[...document.querySelectorAll('#quarantine tbody td.reason')].map(td => td.textContent)`)
	if fmt.Sprint(reasons) != fmt.Sprint([]string{"signature_mismatch", "timestamp_out_of_tolerance"}) {
		t.Errorf("quarantine reasons: got %q, want signature_mismatch and timestamp_out_of_tolerance", reasons)
	}
	if path := os.Getenv(screenshotEnv); path != "" {
		writeScreenshot(t, b, path)
	}

	if err := os.WriteFile(secretsFile, []byte(laterSecret+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	p.Signal(syscall.SIGHUP)
	natstest.CheckFor(t, 10*time.Second, 50*time.Millisecond, func() error {
		// The file's change or the SIGHUP, whichever comes first, reloads it.
		for line := range strings.Lines(p.Logs()) {
			if strings.Contains(line, `"msg":"webhook secrets reloaded"`) && strings.Contains(line, `"count":2`) {
				return nil
			}
		}
		return fmt.Errorf("no reload of the secrets file logged")
	})
	b.do(t, "replay the mis-signed delivery",
		chromedp.Click(chromedp.CSS(`#quarantine tr[data-reason=signature_mismatch] button.replay`)),
		waitFor(`document.querySelectorAll('#quarantine tbody tr[data-seq]').length === 1`))
	b.do(t, "replay the stale delivery, confirming",
		chromedp.Evaluate[chromedp.Void](`window.confirm = (m) => { window.confirmed = m; return true; }`),
		chromedp.Click(chromedp.CSS(`#quarantine tr[data-reason=timestamp_out_of_tolerance] button.replay`)),
		waitFor(`document.querySelectorAll('#quarantine tbody tr[data-seq]').length === 0`),
		waitFor(`document.querySelectorAll('#deliveries tbody tr[data-seq]').length === 25`))
	if got := evaluate[string](t, b, `window.confirmed || ''`); !strings.Contains(got, "timestamp outside the tolerance") {
		t.Errorf("confirmation: got %q, want a question about the tolerance", got)
	}
	counts := map[string]int{}
	for _, m := range streamMessages(t, js, "ZAUTIC") {
		counts[m.Headers().Get(zautic.MessageDeliveryIDHeader)]++
	}
	for _, id := range []string{"dlv_quar_page", "dlv_stale_page"} {
		if counts[id] != 1 {
			t.Errorf("stream messages of %s: got %d, want 1", id, counts[id])
		}
	}
}

// writeScreenshot saves a PNG of the whole page.
func writeScreenshot(t *testing.T, b *browser, path string) {
	t.Helper()
	png, err := chromedp.Run(b.ctx, chromedp.FullScreenshot(100))
	if err != nil {
		t.Fatalf("screenshot: %v", err)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, png, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("wrote the page's screenshot to %s", path)
}

// TestInspectorPageAsksForToken: with admin.token set, the page asks for
// the token, keeps it for the tab, and then shows the deliveries.
func TestInspectorPageAsksForToken(t *testing.T) {
	const token = "page-token-4f0b"
	b := newBrowser(t)
	env := forwarderEnv(natstest.Start(t, "", 0).ClientURL())
	env["FORWARDER_ADMIN_TOKEN"] = token
	p := startForwarder(t, env)
	p.WaitReady(t)
	publish(t, p, "evt_page_tok", "dlv_page_tok", "message.sent")

	b.do(t, "load the page", chromedp.Navigate(p.AdminURL+"/"),
		waitFor(`!document.querySelector('#token-panel').hidden && document.querySelector('#content').hidden`))
	b.do(t, "give a wrong token",
		chromedp.SetValue(chromedp.CSS("#token-input"), "wrong"),
		chromedp.Click(chromedp.CSS("#token-form button")),
		waitFor(`document.querySelector('#token-error').textContent.includes('admin token does not match')`))
	b.do(t, "give the token",
		chromedp.SetValue(chromedp.CSS("#token-input"), token),
		chromedp.Click(chromedp.CSS("#token-form button")),
		waitFor(`document.querySelectorAll('#deliveries tbody tr[data-seq]').length === 1`))
	if got := evaluate[string](t, b, `sessionStorage.getItem('zautic-forwarder-admin-token')`); got != token {
		t.Errorf("sessionStorage token: got %q, want the token", got)
	}
	b.do(t, "reload: the tab keeps the token", chromedp.Reload(),
		waitFor(`document.querySelectorAll('#deliveries tbody tr[data-seq]').length === 1`))
	// The refused token's 401s are the only errors the page may log.
	for _, e := range b.consoleErrors() {
		if !strings.Contains(e, "401") {
			t.Errorf("console error: %s", e)
		}
	}
}

func exceptionDescription(d *runtime.ExceptionDetails) string {
	if d.Exception != nil {
		return " " + d.Exception.Description
	}
	return ""
}
