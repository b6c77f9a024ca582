package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"runtime"
	"runtime/debug"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"github.com/spf13/viper"
	"go.uber.org/zap"
	"go.yaml.in/yaml/v3"

	"github.com/zautic/zautic-forwarder/forwarder"
)

// Stamped by the build: -ldflags "-X main.version=… -X main.commit=…".
var (
	version = "dev"
	commit  = ""
)

func newRootCommand(hangup <-chan os.Signal, stdin io.Reader, stdout, stderr io.Writer) *cobra.Command {
	serve := newServeCommand(hangup, stderr)
	root := &cobra.Command{
		Use:           "zautic-forwarder",
		Short:         "Verify Zautic webhooks and forward each event exactly once to NATS JetStream",
		Long:          "zautic-forwarder with no subcommand runs the server (zautic-forwarder serve).",
		SilenceUsage:  true,
		SilenceErrors: true,
		Args:          cobra.NoArgs,
		RunE:          serve.RunE,
	}
	root.SetIn(stdin)
	root.SetOut(stdout)
	root.SetErr(stderr)
	// The root runs serve, so it takes serve's flags too.
	root.Flags().AddFlagSet(serve.Flags())
	root.AddCommand(serve, newCheckConfigCommand(stdout), newVersionCommand(stdout),
		newSendCommand(stdin, stdout, stderr), newSignCommand(stdin, stdout, stderr), newQuarantineCommand(stdout),
		newDeliveriesCommand(stdout))
	return root
}

// configFlags declares --config and the flags that override single keys;
// flags beat the environment, which beats the file.
func configFlags(fs *pflag.FlagSet) {
	fs.String("config", "", "YAML configuration file")
	fs.String("http-addr", forwarder.DefaultConfig().HTTP.Addr, "webhook listen address (http.addr)")
	fs.String("admin-addr", forwarder.DefaultConfig().Admin.Addr, "admin listen address (admin.addr)")
	fs.String("nats-url", "", "NATS URL(s), comma-separated; empty runs an embedded nats-server (nats.url)")
	fs.String("log-level", forwarder.DefaultConfig().Log.Level, "debug, info, warn or error (log.level)")
}

var flagKeys = map[string]string{
	"http-addr":  "http.addr",
	"admin-addr": "admin.addr",
	"nats-url":   "nats.url",
	"log-level":  "log.level",
}

// loadConfig builds the configuration from defaults, --config, the
// environment and flags.
func loadConfig(fs *pflag.FlagSet) (forwarder.Config, *viper.Viper, error) {
	v := newViper()
	for flag, key := range flagKeys {
		if f := fs.Lookup(flag); f != nil {
			if err := v.BindPFlag(key, f); err != nil {
				return forwarder.Config{}, nil, fmt.Errorf("bind --%s: %w", flag, err)
			}
		}
	}
	path, _ := fs.GetString("config")
	cfg, err := loadConfigFile(v, path)
	return cfg, v, err
}

func newServeCommand(hangup <-chan os.Signal, stderr io.Writer) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "serve",
		Short: "Run the forwarder (the default command)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, _, err := loadConfig(cmd.Flags())
			if err != nil {
				return err
			}
			if _, err := preflight(cfg, os.Getenv); err != nil {
				return err
			}
			log, err := forwarder.NewLogger(cfg.Log, stderr)
			if err != nil {
				return err
			}
			defer func() { _ = log.Sync() }()
			log.Info("starting zautic-forwarder", zap.String("version", version),
				zap.Any("config", redactedMap(cfg)))
			tuneGC(cfg, os.Getenv, log)
			opts, stopTracing, err := startTracing(cmd.Context(), cfg.Tracing, log)
			if err != nil {
				return err
			}
			shutdownBudget := startShutdownBudget(cmd.Context(), cfg.HTTP.ShutdownTimeout)
			err = serve(cmd.Context(), cfg, log, hangup, opts...)
			// Spans of the last requests are still queued: flush them in
			// what is left of the shutdown timeout.
			flushCtx, cancel := shutdownBudget()
			defer cancel()
			stopTracing(flushCtx)
			return err
		},
	}
	configFlags(cmd.Flags())
	return cmd
}

// serve runs the service until ctx ends, passing each hangup on as a
// request to re-read the secret files.
func serve(ctx context.Context, cfg forwarder.Config, log *zap.Logger, hangup <-chan os.Signal, opts ...forwarder.Option) error {
	svc, err := forwarder.Start(ctx, cfg, log, prometheus.NewRegistry(), opts...)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() {
		for {
			select {
			case <-ctx.Done():
				return
			case <-hangup:
				svc.ReloadSecrets("SIGHUP")
			}
		}
	}()
	return svc.Wait(ctx)
}

func newCheckConfigCommand(stdout io.Writer) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "check-config",
		Short: "Load and check the configuration as serve does before it connects; print it with secrets redacted",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, _, err := loadConfig(cmd.Flags())
			if err != nil {
				return err
			}
			// What serve checks before it connects, and nothing less.
			keyIDs, err := preflight(cfg, os.Getenv)
			if err != nil {
				return err
			}
			out, err := yaml.Marshal(cfg.Redacted())
			if err != nil {
				return err
			}
			// Comments, so that the output stays a valid configuration.
			out = appendKeyIDs(out, cfg, keyIDs)
			_, err = stdout.Write(out)
			return err
		},
	}
	configFlags(cmd.Flags())
	return cmd
}

func newVersionCommand(stdout io.Writer) *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print the version, commit and Go version",
		Args:  cobra.NoArgs,
		RunE: func(*cobra.Command, []string) error {
			_, err := fmt.Fprintf(stdout, "zautic-forwarder %s (commit %s, %s)\n", version, buildCommit(), runtime.Version())
			return err
		},
	}
}

// buildCommit is the stamped commit, else the one go build recorded.
func buildCommit() string {
	if commit != "" {
		return commit
	}
	if info, ok := debug.ReadBuildInfo(); ok {
		for _, s := range info.Settings {
			if s.Key == "vcs.revision" {
				return s.Value
			}
		}
	}
	return "unknown"
}

// redactedMap renders the configuration for the startup log line.
func redactedMap(cfg forwarder.Config) map[string]any {
	var m map[string]any
	if raw, err := yaml.Marshal(cfg.Redacted()); err == nil {
		_ = yaml.Unmarshal(raw, &m)
	}
	return m
}
