// Package logs builds the controller's logger in the formats operators ship: klog's text lines, or one
// JSON object per line with the stable keys of docs/logging.md. The keys are constants here, so the
// documentation, the code and the test that parses the controller's output name the same ones.
package logs

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/go-logr/logr"
	"k8s.io/klog/v2/textlogger"
)

// The formats of --log-format.
const (
	FormatText = "text"
	FormatJSON = "json"
)

// Formats are the values --log-format accepts.
var Formats = []string{FormatText, FormatJSON}

// The keys every JSON line has (KeyCaller when the call site is known, KeyError on errors, KeyLogger
// when the logger is named); the key/value pairs of the call follow them.
const (
	KeyTime      = "ts"     // RFC 3339 with nanoseconds, UTC
	KeyLevel     = "level"  // LevelInfo or LevelError
	KeyVerbosity = "v"      // the V level of an info line: 0 actions, 1 decisions, 2 and more detail
	KeyLogger    = "logger" // the logger's name, e.g. controller-runtime's "settings"
	KeyMessage   = "msg"
	KeyCaller    = "caller" // dir/file.go:line of the call
	KeyError     = "err"    // the error of an error line
)

// The values of KeyLevel.
const (
	LevelInfo  = "info"
	LevelError = "error"
)

// New returns a logger writing to w in format (one of Formats), showing info lines up to verbosity.
// Errors are always written.
func New(w io.Writer, format string, verbosity int) (logr.Logger, error) {
	switch format {
	case FormatText:
		return textlogger.NewLogger(textlogger.NewConfig(textlogger.Verbosity(verbosity), textlogger.Output(w))), nil
	case FormatJSON:
		h := slog.NewJSONHandler(w, &slog.HandlerOptions{AddSource: true, Level: slog.Level(-verbosity), ReplaceAttr: replaceAttr})
		return logr.FromSlogHandler(verbosityHandler{h}), nil
	default:
		return logr.Discard(), fmt.Errorf("--log-format must be one of %s, not %q", strings.Join(Formats, ", "), format)
	}
}

// replaceAttr renames slog's built-in keys to ours and writes durations as Go durations ("1m30s"), not
// nanoseconds. (logr's slog bridge already names the error KeyError and the logger KeyLogger.)
func replaceAttr(groups []string, a slog.Attr) slog.Attr {
	if len(groups) == 0 {
		switch a.Key {
		case slog.TimeKey:
			return slog.String(KeyTime, a.Value.Time().UTC().Format(time.RFC3339Nano))
		case slog.LevelKey:
			if lvl, ok := a.Value.Any().(slog.Level); ok && lvl >= slog.LevelError {
				return slog.String(KeyLevel, LevelError)
			}
			return slog.String(KeyLevel, LevelInfo)
		case slog.SourceKey:
			src, ok := a.Value.Any().(*slog.Source)
			if !ok || src == nil || src.File == "" {
				return slog.Attr{} // dropped
			}
			return slog.String(KeyCaller, filepath.Join(filepath.Base(filepath.Dir(src.File)), filepath.Base(src.File))+":"+strconv.Itoa(src.Line))
		}
	}
	if a.Value.Kind() == slog.KindDuration {
		return slog.String(a.Key, a.Value.Duration().String())
	}
	return a
}

// verbosityHandler adds KeyVerbosity to every line: logr's V(n) arrives as slog level -n.
type verbosityHandler struct{ slog.Handler }

func (h verbosityHandler) Handle(ctx context.Context, r slog.Record) error {
	v := 0
	if r.Level < slog.LevelInfo {
		v = int(slog.LevelInfo - r.Level)
	}
	out := slog.NewRecord(r.Time, r.Level, r.Message, r.PC)
	out.AddAttrs(slog.Int(KeyVerbosity, v))
	r.Attrs(func(a slog.Attr) bool { out.AddAttrs(a); return true })
	return h.Handler.Handle(ctx, out)
}

func (h verbosityHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	return verbosityHandler{h.Handler.WithAttrs(attrs)}
}

func (h verbosityHandler) WithGroup(name string) slog.Handler {
	return verbosityHandler{h.Handler.WithGroup(name)}
}
