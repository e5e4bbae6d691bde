package logs

import (
	"flag"
	"strconv"
	"sync"

	"github.com/go-logr/logr"
	"k8s.io/klog/v2"
	"k8s.io/klog/v2/textlogger"
)

// klog (client-go's leader election, reflectors, the API machinery) keeps its logger in a global that
// klog.SetLogger writes and every log call reads without a lock: replacing it while anything may log is
// a data race. So klog is pointed once, when this package is loaded, at a sink whose target can change
// at any time, and RouteKlog changes the target.
var klogRoute = &route{target: klogDefault()}

func init() { klog.SetLogger(logr.New(&routedSink{route: klogRoute})) }

// klogDefault is what klog writes without a logger of its own: its text lines on stderr.
func klogDefault() logr.Logger { return textlogger.NewLogger(textlogger.NewConfig()) }

// RouteKlog makes klog write through l, showing its V lines up to verbosity. It is safe to call at any
// time, from any goroutine.
func RouteKlog(l logr.Logger, verbosity int) error {
	fs := flag.NewFlagSet("klog", flag.ContinueOnError)
	klog.InitFlags(fs)
	if err := fs.Set("v", strconv.Itoa(verbosity)); err != nil { // klog takes its own lock for this
		return err
	}
	klogRoute.set(l)
	return nil
}

// UnrouteKlog points klog back at its default (text lines on stderr, -v=0), e.g. when a test ends.
func UnrouteKlog() {
	_ = RouteKlog(klogDefault(), 0)
}

type route struct {
	mu     sync.RWMutex
	target logr.Logger
}

func (r *route) set(l logr.Logger) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.target = l
}

func (r *route) get() logr.Logger {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return r.target
}

// routedSink is the sink klog holds: it keeps the names, values and call depth given to it and applies
// them to the route's target of the moment.
type routedSink struct {
	route  *route
	names  []string
	values []any
	depth  int
}

// routedFrames are the frames a call through routedSink adds before the target's sink: its own method
// and the target logr.Logger's.
const routedFrames = 2

func (s *routedSink) logger() logr.Logger {
	l := s.route.get()
	for _, n := range s.names {
		l = l.WithName(n)
	}
	if len(s.values) > 0 {
		l = l.WithValues(s.values...)
	}
	return l.WithCallDepth(s.depth + routedFrames)
}

func (s *routedSink) Init(logr.RuntimeInfo) {}

func (s *routedSink) Enabled(level int) bool { return s.route.get().V(level).Enabled() }

func (s *routedSink) Info(level int, msg string, keysAndValues ...any) {
	s.logger().V(level).Info(msg, keysAndValues...)
}

func (s *routedSink) Error(err error, msg string, keysAndValues ...any) {
	s.logger().Error(err, msg, keysAndValues...)
}

func (s *routedSink) WithValues(keysAndValues ...any) logr.LogSink {
	c := *s
	c.values = append(append([]any(nil), s.values...), keysAndValues...)
	return &c
}

func (s *routedSink) WithName(name string) logr.LogSink {
	c := *s
	c.names = append(append([]string(nil), s.names...), name)
	return &c
}

func (s *routedSink) WithCallDepth(depth int) logr.LogSink {
	c := *s
	c.depth += depth
	return &c
}
