package forwarder

import (
	"crypto/sha256"
	"encoding/hex"
	"strconv"
)

// dedupKey is what decides whether a request is new. Under dedup.key
// "event" (the default) it is the event id from the signed body; under
// "delivery" it is the unsigned X-Zautic-Delivery-Id, or the event id when
// the request has none.
func (h *Handler) dedupKey(d *delivery) string {
	if h.cfg.Dedup.Key == DedupKeyEvent || d.deliveryID == "" {
		return d.event.ID
	}
	return d.deliveryID
}

// kvKeys are the KV keys looked up before the publish and marked after it.
// Under dedup.key "delivery" the delivery id is not signed: anyone who saw a
// signed request could replay it with another delivery id. So the signed
// content itself is remembered too, and a request whose signature was
// already accepted is a duplicate whatever its delivery id; a genuine
// re-delivery is signed anew, with another t, and goes through.
func (h *Handler) kvKeys(d *delivery, body []byte) []string {
	keys := []string{KVKey(d.key)}
	if h.cfg.Dedup.Key == DedupKeyDelivery {
		keys = append(keys, signatureKey(d.timestamp, body))
	}
	return keys
}

// signatureKey names an accepted signature by the text its v1 covers, the
// literal t and the body: every v1 that verifies for a request is an HMAC of
// exactly that text, so a replay cannot escape by dropping or reordering v1
// values signed with other secrets. The "sig." form cannot meet a plain
// KVKey (no dot) nor a mapped one ("sha256.").
func signatureKey(t int64, body []byte) string {
	h := sha256.New()
	var prefix [24]byte
	h.Write(strconv.AppendInt(prefix[:0], t, 10))
	h.Write([]byte{'.'})
	h.Write(body)
	return "sig." + hex.EncodeToString(h.Sum(nil))
}
