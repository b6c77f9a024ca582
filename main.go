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

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "zautic-forwarder:", err)
		os.Exit(1)
	}
}

// run executes the command line; the plain command is "serve".
func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	root := newRootCommand(stdin, stdout, stderr)
	root.SetArgs(args)
	return root.ExecuteContext(ctx)
}
