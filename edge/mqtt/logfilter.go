package mqtt

import (
	"context"
	"log/slog"
)

// payloadFilter drops the attributes through which mochi logs whole
// packets ("pk", "packet"): Spool never writes payloads to its logs.
type payloadFilter struct{ slog.Handler }

func (f payloadFilter) Handle(ctx context.Context, r slog.Record) error {
	out := slog.NewRecord(r.Time, r.Level, r.Message, r.PC)
	r.Attrs(func(a slog.Attr) bool {
		if a.Key != "pk" && a.Key != "packet" {
			out.AddAttrs(a)
		}
		return true
	})
	return f.Handler.Handle(ctx, out)
}

func (f payloadFilter) WithAttrs(as []slog.Attr) slog.Handler {
	return payloadFilter{f.Handler.WithAttrs(as)}
}

func (f payloadFilter) WithGroup(name string) slog.Handler {
	return payloadFilter{f.Handler.WithGroup(name)}
}
