package test

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
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

// replaySpy records the body of every replay request the page sends in
// window.replays, and hides from the page's quarantine listing the entries
// above window.holdSeq, as a listing loaded before they arrived would.
const replaySpy = `(() => {
  const realFetch = window.fetch.bind(window);
  window.replays = [];
  window.holdSeq = Infinity;
  window.fetch = async (path, opts) => {
    const url = String(path);
    if (url.startsWith('/quarantine/replay')) window.replays.push(JSON.parse(opts.body));
    const resp = await realFetch(path, opts);
    if (!url.startsWith('/quarantine?') || !resp.ok) return resp;
    const answer = await resp.json();
    answer.entries = answer.entries.filter((q) => q.seq <= window.holdSeq);
    return new Response(JSON.stringify(answer), { status: resp.status, headers: resp.headers });
  };
  window.confirmed = [];
  window.confirm = (m) => { window.confirmed.push(m); return window.confirmAnswer; };
})()`

// utcTime is how the page shows a time.
var utcTime = regexp.MustCompile(`^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2} UTC$`)

// checkQuarantineReplay quarantines two deliveries signed with a secret the
// forwarder learns only later and one signed too long ago, checks that the
// page shows them with their reasons and times in UTC, takes the screenshot
// once the counters are in, then replays: one with its button, then the
// rest with "Replay all listed", which replays exactly the entries listed
// (not one that arrived since), and the stale one only after a confirmation
// of its own naming how many it is, in a request of its own with
// ignore_tolerance. Each reaches the stream exactly once; the replayed
// count says so.
func checkQuarantineReplay(t *testing.T, b *browser, p *forwarderProcess, js jetstream.JetStream, secretsFile string) {
	t.Helper()
	const laterSecret = "later-secret-9d2e"
	b.do(t, "watch the replay requests", chromedp.Evaluate[chromedp.Void](replaySpy))
	quarantineDelivery(t, p, "evt_quar_page", "dlv_quar_page", laterSecret)
	stale := sampleEvent("evt_stale_page", "message.read")
	old := time.Now().Add(-time.Hour).Unix()
	if got := send(t, p.WebhookURL, webhook{body: stale, deliveryID: "dlv_stale_page", signature: zautic.Sign([]byte(testSecret), old, stale),
		headers: map[string]string{"X-Zautic-Event": "message.read"}}); got.Status != http.StatusBadRequest {
		t.Fatalf("stale delivery: got %d %v, want 400", got.Status, got.Body)
	}
	quarantineDelivery(t, p, "evt_quar_page2", "dlv_quar_page2", laterSecret)
	b.do(t, "see the three quarantined",
		waitFor(`document.querySelectorAll('#quarantine tbody tr[data-seq]').length === 3`),
		chromedp.SetValue(chromedp.CSS("#search-input"), "dlv_quar_page"),
		chromedp.Click(chromedp.CSS("#search-form button")),
		waitFor(`document.querySelector('#search-result [data-field=status]')?.textContent === 'quarantined'`))
	if got := evaluate[string](t, b, `[...document.querySelectorAll('#search-result dt.unsigned')].map(dt => dt.textContent).join()`); got != "delivery_id (unsigned),event_id (unsigned),event_type (unsigned),signed_at (unsigned)" {
		t.Errorf("lookup of a quarantined delivery: unsigned fields marked %q, want delivery_id, event_id, event_type and signed_at", got)
	}
	if got := evaluate[string](t, b, `document.querySelector('#search-result [data-field=received_at]').textContent`); !utcTime.MatchString(got) {
		t.Errorf("lookup received_at: got %q, want a time in UTC", got)
	}
	reasons := evaluate[[]string](t, b, `[...document.querySelectorAll('#quarantine tbody td.reason')].map(td => td.textContent)`)
	if fmt.Sprint(reasons) != fmt.Sprint([]string{"signature_mismatch", "timestamp_out_of_tolerance", "signature_mismatch"}) {
		t.Errorf("quarantine reasons: got %q, want signature_mismatch, timestamp_out_of_tolerance, signature_mismatch", reasons)
	}
	for _, column := range []string{"#quarantine tbody td.when", "#deliveries tbody td.when"} {
		// The cell's first text is the time; the quarantine's adds the signed time below it.
		if got := evaluate[string](t, b, `document.querySelector('`+column+`').firstChild.textContent`); !utcTime.MatchString(got) {
			t.Errorf("%s: got %q, want a time such as 2026-12-04 19:20:05 UTC", column, got)
		}
	}
	// The screenshot waits for the counters: the overview refreshes on its
	// own period, after the tables.
	b.do(t, "see the rejections counted",
		waitFor(`document.querySelector('[data-outcome=rejected] dd')?.textContent === '3'`),
		waitFor(`document.querySelector('[data-outcome=replayed] dd')?.textContent === '0'`))
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
	b.do(t, "replay the first mis-signed delivery with its button",
		chromedp.Click(chromedp.CSS(`#quarantine tr[data-seq="1"] button.replay`)),
		waitFor(`document.querySelectorAll('#quarantine tbody tr[data-seq]').length === 2`))

	// An entry that arrives after the page listed the quarantine.
	b.do(t, "hold the listing", chromedp.Evaluate[chromedp.Void](`window.holdSeq = 3`))
	quarantineDelivery(t, p, "evt_late_page", "dlv_late_page", "never-configured-secret")
	b.do(t, "replay all listed, declining to ignore the tolerance",
		chromedp.Evaluate[chromedp.Void](`window.confirmAnswer = false; window.replays = []; window.confirmed = [];
			document.querySelector('#quarantine-info').textContent = ''; document.querySelector('#replay-all').click()`),
		waitFor(`document.querySelector('#quarantine-info').textContent !== ''`),
		waitFor(`[...document.querySelectorAll('#quarantine tbody tr[data-seq]')].map(tr => tr.dataset.seq).join() === '2'`))
	checkReplays(t, b, `[{"seqs":[3]}]`)
	b.do(t, "replay all listed, ignoring the tolerance",
		chromedp.Evaluate[chromedp.Void](`window.confirmAnswer = true; window.replays = []; window.confirmed = [];
			document.querySelector('#replay-all').click()`),
		waitFor(`document.querySelectorAll('#quarantine tbody tr[data-seq]').length === 0`))
	checkReplays(t, b, `[{"seqs":[2],"ignore_tolerance":true}]`)
	b.do(t, "release the listing: the late entry is still kept",
		chromedp.Evaluate[chromedp.Void](`window.holdSeq = Infinity`),
		waitFor(`[...document.querySelectorAll('#quarantine tbody tr[data-seq]')].map(tr => tr.dataset.seq).join() === '4'`),
		waitFor(`document.querySelectorAll('#deliveries tbody tr[data-seq]').length === 26`),
		waitFor(`document.querySelector('[data-outcome=replayed] dd')?.textContent === '3'`))
	counts := map[string]int{}
	for _, m := range streamMessages(t, js, "ZAUTIC") {
		counts[m.Headers().Get(zautic.MessageDeliveryIDHeader)]++
	}
	for id, want := range map[string]int{"dlv_quar_page": 1, "dlv_stale_page": 1, "dlv_quar_page2": 1, "dlv_late_page": 0} {
		if counts[id] != want {
			t.Errorf("stream messages of %s: got %d, want %d", id, counts[id], want)
		}
	}
}

// checkReplays compares the replay requests the page sent since the spy
// was last reset with want, and checks that the tolerance was asked about
// once, naming one entry.
func checkReplays(t *testing.T, b *browser, want string) {
	t.Helper()
	if got := evaluate[string](t, b, `JSON.stringify(window.replays)`); got != want {
		t.Errorf("replay requests: got %s, want %s", got, want)
	}
	confirmed := evaluate[[]string](t, b, `window.confirmed`)
	if len(confirmed) != 1 || !strings.Contains(confirmed[0], "1 entry") || !strings.Contains(confirmed[0], "timestamp outside the tolerance") {
		t.Errorf("confirmations: got %q, want one about the tolerance of 1 entry", confirmed)
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
		waitFor(`!document.querySelector('#token-panel').hidden`),
		waitFor(`document.querySelector('#deliveries tbody').textContent === 'enter the admin token to see deliveries'`),
		waitFor(`document.querySelector('#quarantine tbody').textContent === 'enter the admin token to see the quarantine'`))
	// While the token is missing the actions are off, and the counters,
	// which need no token, are shown.
	disabled := evaluate[[]bool](t, b, `['replay-all', 'search-submit', 'older', 'newest'].map(id => document.getElementById(id).disabled)`)
	if fmt.Sprint(disabled) != "[true true true true]" {
		t.Errorf("replay all, find, older, newest disabled: got %v, want all true", disabled)
	}
	b.do(t, "see the counters", waitFor(`document.querySelector('[data-outcome=published] dd')?.textContent === '1'`))
	b.do(t, "give a wrong token",
		chromedp.SetValue(chromedp.CSS("#token-input"), "wrong"),
		chromedp.Click(chromedp.CSS("#token-form button")),
		waitFor(`document.querySelector('#token-error').textContent.includes('admin token does not match')`))
	b.do(t, "give the token",
		chromedp.SetValue(chromedp.CSS("#token-input"), token),
		chromedp.Click(chromedp.CSS("#token-form button")),
		waitFor(`document.querySelectorAll('#deliveries tbody tr[data-seq]').length === 1`))
	if got := evaluate[bool](t, b, `document.getElementById('search-submit').disabled`); got {
		t.Errorf("find disabled after the token was given, want it enabled")
	}
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
