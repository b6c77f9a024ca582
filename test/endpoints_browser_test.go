package test

import (
	"fmt"
	"testing"

	"github.com/chromedp/chromedp"
)

// TestEndpointsInspectorPage drives the page of a forwarder with three
// endpoints: the deliveries table shows each delivery's endpoint, the
// endpoint filter narrows it, and a lookup under the filter finds the
// filtered endpoint's delivery of an event id that all three received.
func TestEndpointsInspectorPage(t *testing.T) {
	b := newBrowser(t)
	p, _, _ := startEndpoints(t)
	body := sampleEvent("evt_page_ep", "message.delivered")
	sendThroughAll(t, p, body)
	b.do(t, "load the page", chromedp.Navigate(p.AdminURL+"/"),
		waitFor(`document.querySelectorAll('#deliveries tbody tr[data-seq]').length === 3`))
	endpoints := evaluate[[]string](t, b, `[...document.querySelectorAll('#deliveries tbody td.endpoint')].map(td => td.textContent)`)
	if fmt.Sprint(endpoints) != "[beta acme default]" {
		t.Errorf("endpoint column: got %q, want beta, acme, default, newest first", endpoints)
	}
	b.do(t, "filter by endpoint and look the event up",
		chromedp.Evaluate[chromedp.Void](`(() => { const f = document.querySelector('#endpoint-filter'); f.value = 'acme'; f.dispatchEvent(new Event('change')); })()`),
		waitFor(`document.querySelectorAll('#deliveries tbody tr[data-seq]').length === 1`),
		chromedp.SetValue(chromedp.CSS("#search-input"), "evt_page_ep"),
		chromedp.Click(chromedp.CSS("#search-form button")),
		waitFor(`document.querySelector('#search-result [data-field=endpoint]')?.textContent === 'acme'`))
	if got := evaluate[string](t, b, `document.querySelector('#search-result [data-field=subject]').textContent`); got != "zautic.acme.message.delivered" {
		t.Errorf("lookup under the acme filter: subject %q, want zautic.acme.message.delivered", got)
	}
	if errs := b.consoleErrors(); len(errs) > 0 {
		t.Errorf("console errors: %q", errs)
	}
}
