package natsconn

import (
	"context"
	"fmt"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// KeyReader tells whether keys of one KV bucket hold a value, as KV Get
// finds them: by a direct get of the last message on the key's subject,
// which is what KV Get sends to a bucket that allows direct gets. It skips
// what KV Get does beyond that request (a regular expression over the key,
// a JSON request body that a direct get by subject does not send, the
// entry's time parsed), a fifth of the webhook path's dedup lookup.
type KeyReader struct {
	prefix string // $JS.API.DIRECT.GET.KV_<bucket>.$KV.<bucket>.
}

// NewKeyReader returns the reader of bucket's keys.
func NewKeyReader(bucket string) KeyReader {
	return KeyReader{prefix: "$JS.API.DIRECT.GET.KV_" + bucket + ".$KV." + bucket + "."}
}

// Headers of a direct get's answer that say a key holds no value: KV
// Delete and Purge write the operation, and a stream's limits leave a
// marker with its reason.
const (
	kvOperationHeader = "KV-Operation"
	descriptionHeader = "Description"
	messageNotFound   = "404"
)

// Exists reports whether key holds a value. Ask it only of a bucket whose
// stream allows direct gets (one that does not answers
// nats.ErrNoResponders); a key KV Get would refuse is
// jetstream.ErrInvalidKey.
func (r KeyReader) Exists(ctx context.Context, nc *nats.Conn, key string) (bool, error) {
	if !validKey(key) {
		return false, jetstream.ErrInvalidKey
	}
	resp, err := nc.RequestWithContext(ctx, r.prefix+key, nil)
	if err != nil {
		return false, err
	}
	if len(resp.Data) == 0 {
		switch status := resp.Header.Get(statusHeader); status {
		case "":
		case messageNotFound:
			return false, nil
		default:
			description := resp.Header.Get(descriptionHeader)
			if description == "" {
				description = "unable to get message"
			}
			return false, fmt.Errorf("nats: %s (status %s)", description, status)
		}
	}
	if op := resp.Header.Get(kvOperationHeader); op != "" {
		return op != "DEL" && op != "PURGE", nil
	}
	switch resp.Header.Get(jetstream.MarkerReasonHeader) {
	case "MaxAge", "Purge", "Remove":
		return false, nil
	}
	return true, nil
}

// validKey is jetstream's rule for a key, without its regular expression:
// letters, digits and -/_=. only, no dot at either end nor two in a row.
func validKey(key string) bool {
	if key == "" || key[0] == '.' || key[len(key)-1] == '.' {
		return false
	}
	for i := 0; i < len(key); i++ {
		c := key[i]
		if c == '.' && key[i-1] == '.' {
			return false
		}
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '/' || c == '_' || c == '=' || c == '.') {
			return false
		}
	}
	return true
}
