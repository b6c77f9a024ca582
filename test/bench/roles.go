package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	_ "net/http/pprof" // -pprof
	"os"
	"os/signal"
	"strconv"
	"syscall"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/zautic/zautic-forwarder/forwarder"
	"github.com/zautic/zautic-forwarder/forwarder/adminapi"
	"github.com/zautic/zautic-forwarder/zautic"
)

// The rows other than C run as roles of this same binary in their own
// processes, so that each one's CPU can be read from /proc.
const (
	roleNATS      = "nats-server"
	roleReceiverB = "receiver-b"
	roleReceiverM = "receiver-m"
	// roleReceiverMA is row MA: row M with the mark sent without waiting
	// for its PubAck, the design the forwarder follows (its answer waits
	// for the event's PubAck only).
	roleReceiverMA = "receiver-ma"
)

func runRole(role, listen, natsURL, storeDir, syncMode, pprofAddr string) error {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if pprofAddr != "" {
		// On its own listener, as the forwarder's admin.pprof: the
		// measured handler stays the bare one.
		go func() { _ = serveHTTP(ctx, pprofAddr, http.DefaultServeMux) }()
	}
	switch role {
	case roleNATS:
		return serveNATS(ctx, listen, storeDir, syncMode)
	case roleReceiverB:
		return serveHTTP(ctx, listen, http.HandlerFunc(verifyOnly))
	case roleReceiverM, roleReceiverMA:
		h, closeNATS, err := newDesignMinimum(ctx, natsURL, role == roleReceiverMA)
		if err != nil {
			return err
		}
		defer closeNATS()
		return serveHTTP(ctx, listen, h)
	}
	return fmt.Errorf("unknown role %q", role)
}

// serveNATS runs one nats-server with JetStream on file storage, flushing
// to disk as syncMode says.
func serveNATS(ctx context.Context, listen, storeDir, syncMode string) error {
	always, interval, err := parseSyncMode(syncMode)
	if err != nil {
		return err
	}
	host, portText, err := net.SplitHostPort(listen)
	if err != nil {
		return err
	}
	port, err := strconv.Atoi(portText)
	if err != nil {
		return err
	}
	ns, err := server.NewServer(&server.Options{Host: host, Port: port, JetStream: true, StoreDir: storeDir, NoSigs: true, NoLog: true,
		SyncAlways: always, SyncInterval: interval})
	if err != nil {
		return err
	}
	ns.Start()
	if !ns.ReadyForConnections(10 * time.Second) {
		return errors.New("nats-server not ready")
	}
	<-ctx.Done()
	ns.Shutdown()
	ns.WaitForShutdown()
	return nil
}

// parseSyncMode reads -sync as nats-server reads sync_interval: "always",
// or a positive duration between background fsyncs.
func parseSyncMode(mode string) (always bool, interval time.Duration, err error) {
	if mode == "always" {
		return true, 0, nil
	}
	if interval, err = time.ParseDuration(mode); err != nil || interval <= 0 {
		return false, 0, fmt.Errorf("sync mode %q: want always or a positive duration", mode)
	}
	return false, interval, nil
}

func serveHTTP(ctx context.Context, listen string, h http.Handler) error {
	srv := &http.Server{Addr: listen, Handler: h, ReadHeaderTimeout: 5 * time.Second}
	go func() {
		<-ctx.Done()
		_ = srv.Close()
	}()
	if err := srv.ListenAndServe(); !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

var benchSecrets = [][]byte{[]byte(benchSecret)}

// verifyOnly is row B: read the body, verify the signature, answer 200.
func verifyOnly(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, 1<<20))
	if err != nil {
		http.Error(w, err.Error(), http.StatusRequestEntityTooLarge)
		return
	}
	if _, err := zautic.VerifySignature(body, r.Header.Get(zautic.RequestSignatureHeader), benchSecrets, 5*time.Minute, time.Now()); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	w.WriteHeader(http.StatusOK)
}

// newDesignMinimum is row M: exactly the forwarder's work (verify, KV Get,
// publish with PubAck, KV Create) on bare net/http, with no framework,
// logging or metrics. With asyncMark (row MA), the mark is published as KV
// Create would publish it, but the answer does not wait for its PubAck.
func newDesignMinimum(ctx context.Context, natsURL string, asyncMark bool) (http.Handler, func(), error) {
	nc, err := nats.Connect(natsURL)
	if err != nil {
		return nil, nil, err
	}
	js, err := jetstream.New(nc)
	if err != nil {
		return nil, nil, err
	}
	cfg := forwarder.DefaultConfig()
	if _, err := js.CreateOrUpdateStream(ctx, jetstream.StreamConfig{Name: cfg.Stream.Name, Subjects: []string{"zautic.>"},
		Storage: jetstream.FileStorage, Duplicates: cfg.Stream.DuplicateWindow, MaxAge: cfg.Stream.MaxAge}); err != nil {
		return nil, nil, err
	}
	kv, err := js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: cfg.Dedup.Bucket, TTL: cfg.Dedup.TTL, Storage: jetstream.FileStorage})
	if err != nil {
		return nil, nil, err
	}
	h := func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, 1<<20))
		if err != nil {
			http.Error(w, err.Error(), http.StatusRequestEntityTooLarge)
			return
		}
		ts, err := zautic.VerifySignature(body, r.Header.Get(zautic.RequestSignatureHeader), benchSecrets, 5*time.Minute, time.Now())
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		ev, err := zautic.ParseEvent(body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		subject, err := zautic.SubjectFor(cfg.Stream.SubjectPrefix, ev.Type)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		key := r.Header.Get(zautic.RequestDeliveryIDHeader)
		if key == "" {
			key = ev.ID
		}
		ctx, cancel := context.WithTimeout(r.Context(), cfg.NATS.PublishTimeout)
		defer cancel()
		kvKey := adminapi.KVKey(key)
		if _, err := kv.Get(ctx, kvKey); err == nil {
			_, _ = w.Write([]byte(`{"status":"duplicate"}`))
			return
		} else if !errors.Is(err, jetstream.ErrKeyNotFound) {
			http.Error(w, err.Error(), http.StatusServiceUnavailable)
			return
		}
		msg := nats.NewMsg(subject)
		msg.Data = body
		msg.Header.Set(zautic.MessageIDHeader, key)
		msg.Header.Set(zautic.MessageEventTypeHeader, ev.Type)
		msg.Header.Set(zautic.MessageEventIDHeader, ev.ID)
		msg.Header.Set(zautic.MessageTimestampHeader, strconv.FormatInt(ts.Timestamp, 10))
		ack, err := js.PublishMsg(ctx, msg)
		if err != nil {
			http.Error(w, err.Error(), http.StatusServiceUnavailable)
			return
		}
		if asyncMark {
			mark := &nats.Msg{Subject: "$KV." + cfg.Dedup.Bucket + "." + kvKey, Header: nats.Header{jetstream.ExpectedLastSubjSeqHeader: []string{"0"}},
				Data: strconv.AppendUint(nil, ack.Sequence, 10)}
			_, _ = js.PublishMsgAsync(mark)
		} else {
			_, _ = kv.Create(ctx, kvKey, strconv.AppendUint(nil, ack.Sequence, 10))
		}
		_, _ = fmt.Fprintf(w, `{"status":"published","seq":%d}`, ack.Sequence)
	}
	return http.HandlerFunc(h), nc.Close, nil
}
