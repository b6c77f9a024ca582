package ingest

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"strconv"

	"github.com/zautic/zautic-forwarder/forwarder/adminapi"
)

// dedupKey is what decides whether a request is new. Under dedup.key
// "event" (the default) it is the event id from the signed body; under
// "delivery" it is the unsigned X-Zautic-Delivery-Id, or the event id when
// the request has none.
func (h *Handler) dedupKey(d *delivery) string {
	if h.cfg.DedupKey == DedupKeyEvent || d.deliveryID == "" {
		return d.event.ID
	}
	return d.deliveryID
}

// kvKeys are the KV keys of a delivery: the dedup key's, and under dedup.key
// "delivery" the accepted signature's. A fixed array, not a slice, so that
// the delivery, which holds them, need not leave the stack.
type kvKeys struct {
	keys [2]string
	n    int
}

func (k *kvKeys) list() []string { return k.keys[:k.n] }

// kvKeys are the KV keys looked up before the publish and marked after it.
// Under dedup.key "delivery" the delivery id is not signed: anyone who saw a
// signed request could replay it with another delivery id. So the signed
// content itself is remembered too, and a request whose signature was
// already accepted is a duplicate whatever its delivery id; a genuine
// re-delivery is signed anew, with another t, and goes through.
func (h *Handler) kvKeys(d *delivery, body []byte) kvKeys {
	k := kvKeys{keys: [2]string{adminapi.KVKey(d.key)}, n: 1}
	if h.cfg.DedupKey == DedupKeyDelivery {
		k.keys[1], k.n = signatureKey(d.signed.Timestamp, body), 2
	}
	return k
}

// messageID is the Nats-Msg-Id of a delivery, which the stream's duplicate
// window dedups on. Under dedup.key "delivery" it is the signature's key,
// not the delivery id: the lookup and the marks cannot stop two copies of
// one signed request under two delivery ids that arrive together (two
// replicas, two replays, a replay racing the original), since each misses
// the lookup before the other's mark; the window, keyed on the signature,
// stores only the first. Copies of one delivery id with the same signature
// meet there too; a delivery signed anew is caught by the delivery id's
// mark once the first is marked.
func (h *Handler) messageID(d *delivery) string {
	if h.cfg.DedupKey == DedupKeyDelivery {
		return d.kvKeys.keys[1]
	}
	return adminapi.MessageID(d.key)
}

// seen reports whether any of keys is in the dedup bucket.
func (h *Handler) seen(ctx context.Context, keys *kvKeys) (bool, error) {
	for _, key := range keys.list() {
		if seen, err := h.lookUp(ctx, key); err != nil || seen {
			return seen, err
		}
	}
	return false, nil
}

// signatureKey names an accepted signature by the text its v1 covers, the
// literal t and the body: every v1 that verifies for a request is an HMAC of
// exactly that text, so a replay cannot escape by dropping or reordering v1
// values signed with other secrets. The "sig." form cannot meet a plain
// adminapi.KVKey (no dot) nor a mapped one ("sha256.").
func signatureKey(t int64, body []byte) string {
	h := sha256.New()
	var prefix [24]byte
	h.Write(strconv.AppendInt(prefix[:0], t, 10))
	h.Write([]byte{'.'})
	h.Write(body)
	return adminapi.SignatureKeyPrefix + hex.EncodeToString(h.Sum(nil))
}
