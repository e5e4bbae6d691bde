package logs

import (
	"bytes"
	"runtime"
	"strings"
	"sync"
	"testing"

	"k8s.io/klog/v2"
)

// lockedBuffer is a bytes.Buffer several goroutines write.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func TestKlogKeepsItsCallerNamesAndValuesThroughTheRoute(t *testing.T) {
	var buf bytes.Buffer
	log, err := New(&buf, FormatJSON, 2)
	if err != nil {
		t.Fatal(err)
	}
	if err := RouteKlog(log, 2); err != nil {
		t.Fatal(err)
	}
	defer UnrouteKlog()
	klog.V(2).InfoS("Watching", "resource", "secrets")
	klog.Background().WithName("leaderelection").WithValues("lease", "certrollout").V(1).Info("Renewed")
	klog.V(3).InfoS("Above -v=2, not written")
	objs := lines(t, buf.String())
	if len(objs) != 2 {
		t.Fatalf("want 2 lines, got %d:\n%s", len(objs), buf.String())
	}
	if c, _ := objs[0][KeyCaller].(string); !strings.HasPrefix(c, "logs/klog_test.go:") {
		t.Errorf("caller %q, want this test's line: the route must not show itself as the caller", c)
	}
	if objs[0]["resource"] != "secrets" {
		t.Errorf("key/values lost: %v", objs[0])
	}
	if objs[1][KeyLogger] != "leaderelection" || objs[1]["lease"] != "certrollout" || objs[1][KeyVerbosity] != 1.0 {
		t.Errorf("name, values or verbosity lost: %v", objs[1])
	}
	if c, _ := objs[1][KeyCaller].(string); !strings.HasPrefix(c, "logs/klog_test.go:") {
		t.Errorf("caller %q of a contextual klog logger, want this test's line", c)
	}
}

// Run with -race (make test does): changing klog's destination while other goroutines log through klog
// is what a test does when it captures the controller's logs, and must not be a data race.
func TestKlogsDestinationCanChangeWhileOthersLog(t *testing.T) {
	first, second := &lockedBuffer{}, &lockedBuffer{}
	a, _ := New(first, FormatJSON, 0)
	b, _ := New(second, FormatJSON, 0)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
					klog.InfoS("Reflector line")
				}
			}
		}()
	}
	for i := range 20 {
		l, buf := a, first
		if i%2 == 1 {
			l, buf = b, second
		}
		before := len(buf.String())
		if err := RouteKlog(l, 0); err != nil {
			t.Fatal(err)
		}
		for len(buf.String()) == before { // the loggers reach the new destination
			runtime.Gosched()
		}
	}
	close(stop)
	wg.Wait()
	UnrouteKlog()
	if got := lines(t, first.String())[0][KeyMessage]; got != "Reflector line" {
		t.Fatalf("a line %q, want klog's", got)
	}
}
