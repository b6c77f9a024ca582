// Command zautic-forwarder receives signed Zautic webhooks and forwards each
// event exactly once to NATS JetStream. See README.md.
package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

// main owns the signals: SIGINT and SIGTERM end the context, SIGHUP asks
// the running service to re-read its secret files.
func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	hangup := make(chan os.Signal, 1)
	signal.Notify(hangup, syscall.SIGHUP)
	err := run(ctx, os.Args[1:], hangup, os.Stdin, os.Stdout, os.Stderr)
	signal.Stop(hangup)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "zautic-forwarder:", err)
		os.Exit(1)
	}
}

// run executes the command line; the plain command is "serve". Each value
// received on hangup makes a running service re-read its secret files.
func run(ctx context.Context, args []string, hangup <-chan os.Signal, stdin io.Reader, stdout, stderr io.Writer) error {
	root := newRootCommand(hangup, stdin, stdout, stderr)
	root.SetArgs(args)
	return root.ExecuteContext(ctx)
}
