package telemetry

import (
	"fmt"
	"io"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

// LogConfig configures zap.
type LogConfig struct {
	Level  string `yaml:"level"`
	Format string `yaml:"format"`
	// FlushInterval buffers log writes for at most this long; 0 writes each
	// line at once.
	FlushInterval time.Duration `yaml:"flush_interval"`
}

// DefaultLogConfig returns the log section's defaults.
func DefaultLogConfig() LogConfig {
	return LogConfig{Level: "info", Format: "json", FlushInterval: 100 * time.Millisecond}
}

// NewLogger builds the process logger: JSON with RFC 3339 times by default,
// or a console encoder for humans, writing to w. With log.flush_interval set,
// writes are buffered for at most that long: a write system call per line,
// under a lock every request contends for, was the largest cost the
// forwarder adds per event (BENCHMARKS.md). Sync flushes the buffer.
func NewLogger(cfg LogConfig, w io.Writer) (*zap.Logger, error) {
	level, err := zapcore.ParseLevel(cfg.Level)
	if err != nil {
		return nil, fmt.Errorf("log.level: %w", err)
	}
	encCfg := zap.NewProductionEncoderConfig()
	encCfg.EncodeTime = zapcore.RFC3339NanoTimeEncoder
	encCfg.TimeKey = "time"
	// "window":"15m0s", not "window":900: a reader should not have to know
	// which unit a number is in.
	encCfg.EncodeDuration = zapcore.StringDurationEncoder
	var enc zapcore.Encoder
	if cfg.Format == "console" {
		encCfg.EncodeLevel = zapcore.CapitalColorLevelEncoder
		enc = zapcore.NewConsoleEncoder(encCfg)
	} else {
		enc = zapcore.NewJSONEncoder(encCfg)
	}
	var out zapcore.WriteSyncer = zapcore.Lock(zapcore.AddSync(w))
	if cfg.FlushInterval > 0 {
		out = &zapcore.BufferedWriteSyncer{WS: zapcore.AddSync(w), Size: 256 << 10, FlushInterval: cfg.FlushInterval}
	}
	core := zapcore.NewCore(enc, out, level)
	return zap.New(core), nil
}
