package ingest

import (
	"crypto/rand"
	"strconv"
	"sync/atomic"
)

// requestIDs generates the ids of requests that come without X-Request-Id:
// a random prefix drawn once per process, then a counter. Ids stay unique
// across replicas and restarts without reading crypto/rand on every request,
// as Echo's default generator does.
type requestIDs struct {
	prefix string
	count  atomic.Uint64
}

const requestIDPrefixLen = 20

func newRequestIDs() *requestIDs {
	return &requestIDs{prefix: rand.Text()[:requestIDPrefixLen]}
}

// next returns a new id: the prefix and the counter in base 36, 21 to 33
// characters of [A-Z2-7a-z0-9].
func (g *requestIDs) next() string {
	var buf [requestIDPrefixLen + 13]byte
	b := append(buf[:0], g.prefix...)
	b = strconv.AppendUint(b, g.count.Add(1), 36)
	return string(b)
}
