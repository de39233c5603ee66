package storage

import (
	"context"
	"fmt"
	"log/slog"
)

// pebbleLogger sends Pebble's messages to a slog.Logger instead of stderr:
// Infof at Debug, Errorf and Fatalf at Error. Fatalf then panics, since
// Pebble does not expect it to return.
type pebbleLogger struct{ l *slog.Logger }

func (p pebbleLogger) Infof(format string, args ...any) {
	p.log(slog.LevelDebug, format, args)
}

func (p pebbleLogger) Errorf(format string, args ...any) {
	p.log(slog.LevelError, format, args)
}

func (p pebbleLogger) Fatalf(format string, args ...any) {
	p.log(slog.LevelError, format, args)
	panic(fmt.Sprintf("pebble: "+format, args...))
}

func (p pebbleLogger) log(level slog.Level, format string, args []any) {
	ctx := context.Background()
	if p.l.Enabled(ctx, level) {
		p.l.Log(ctx, level, fmt.Sprintf(format, args...), "component", "pebble")
	}
}
