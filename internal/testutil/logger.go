package testutil

import (
	"log/slog"
	"strings"
	"testing"
)

// Logger returns a logger whose warnings and errors go to tb.Log, so that
// they show with a failing test and stay quiet otherwise.
func Logger(tb testing.TB) *slog.Logger {
	return slog.New(slog.NewTextHandler(tbWriter{tb}, &slog.HandlerOptions{Level: slog.LevelWarn}))
}

// tbWriter writes each log line to tb.Log.
type tbWriter struct{ tb testing.TB }

func (w tbWriter) Write(p []byte) (int, error) {
	w.tb.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}
