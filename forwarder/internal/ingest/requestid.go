package ingest

import (
	"crypto/rand"
	"strconv"
	"sync"

	"github.com/labstack/echo/v4"
)

// requestIDs generates the ids of requests that come without X-Request-Id:
// a random prefix drawn once per process, then a counter. Ids stay unique
// across replicas and restarts without reading crypto/rand on every request,
// as Echo's default generator does.
//
// They are made in blocks of requestIDBlock: one string holds a block's ids
// and one slice their header values, so that an answer's X-Request-Id costs
// no allocation of its own (a string and a []string per request otherwise).
type requestIDs struct {
	prefix string

	mu     sync.Mutex
	count  uint64   // the last counter value drawn
	values []string // the current block's header values, one id each
	used   int      // how many of values have been handed out
}

const (
	requestIDPrefixLen = 20
	requestIDBlock     = 64
)

func newRequestIDs() *requestIDs {
	return &requestIDs{prefix: rand.Text()[:requestIDPrefixLen]}
}

// next returns a new id: the prefix and the counter in base 36, 21 to 33
// characters of [A-Z2-7a-z0-9].
func (g *requestIDs) next() string { return g.nextValue()[0] }

// nextValue returns a new id as a header value, a slice of capacity 1 that
// no other answer shares.
func (g *requestIDs) nextValue() []string {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.used == len(g.values) {
		g.newBlock()
	}
	g.used++
	return g.values[g.used-1 : g.used : g.used]
}

// newBlock draws the next requestIDBlock ids.
func (g *requestIDs) newBlock() {
	text := make([]byte, 0, requestIDBlock*(requestIDPrefixLen+13))
	var ends [requestIDBlock]int
	for i := range ends {
		g.count++
		text = append(text, g.prefix...)
		text = strconv.AppendUint(text, g.count, 36)
		ends[i] = len(text)
	}
	all := string(text)
	g.values, g.used = make([]string, requestIDBlock), 0
	start := 0
	for i, end := range ends {
		g.values[i], start = all[start:end], end
	}
}

// set gives the answer its X-Request-Id: the request's own when it is
// usable, else a generated one. The client chooses the id, which is echoed in
// the answer and written to every log line of the request (both read it from
// the answer's header), so one that is too long or holds anything but
// printable ASCII is replaced.
func (g *requestIDs) set(c echo.Context) {
	answer := c.Response().Header()
	// The request's headers are canonical: an index, not Get's canonicalization.
	if v := c.Request().Header[echo.HeaderXRequestID]; len(v) > 0 && v[0] != "" && usableRequestID(v[0]) {
		answer[echo.HeaderXRequestID] = v[:1:1]
		return
	}
	answer[echo.HeaderXRequestID] = g.nextValue()
}

// middleware sets the request id before next runs. It wraps the webhook
// route once, in NewServer: a middleware given to Echo's Use is applied
// anew to every request, one closure each.
func (g *requestIDs) middleware(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		g.set(c)
		return next(c)
	}
}

// maxRequestIDLength bounds the X-Request-Id taken from a request; a longer
// one is replaced by a generated id.
const maxRequestIDLength = 128

func usableRequestID(id string) bool {
	return len(id) <= maxRequestIDLength && printableASCII(id)
}

func printableASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < 0x20 || s[i] > 0x7e {
			return false
		}
	}
	return true
}
