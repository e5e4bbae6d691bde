package decide

import (
	"encoding/json"
	"fmt"
	"net"
	"net/url"
	"strconv"
	"strings"
	"time"

	api "github.com/certrollout/certrollout/api/v1alpha1"
)

// DefaultReloadTimeout is how long after calling a workload's reload hook its pods may take to serve the
// new certificates before it is restarted instead.
const DefaultReloadTimeout = time.Minute

// reloadPoll is how often a reload in progress is looked at.
const reloadPoll = 2 * time.Second

// ReloadHook is a workload's reload action (api.AnnotationReload): an HTTP call certrollout makes to each
// pod to have it load its renewed certificates without a restart.
type ReloadHook struct {
	Method string
	// Scheme is http or https; Port and Path (with its query) are the pod's.
	Scheme, Path string
	Port         int
	Timeout      time.Duration
}

func (h ReloadHook) String() string {
	return fmt.Sprintf("%s %s://:%d%s", h.Method, h.Scheme, h.Port, h.Path)
}

// URL is the hook's address on the pod at ip.
func (h ReloadHook) URL(ip string) string {
	return h.Scheme + "://" + net.JoinHostPort(ip, strconv.Itoa(h.Port)) + h.Path
}

// ParseReloadHook reads the workload's reload annotations; ok is false when it has none. The URL names
// no host: the call goes to each pod's own IP, so an annotation can never send certrollout elsewhere.
func ParseReloadHook(annotations map[string]string) (h ReloadHook, ok bool, err error) {
	raw, ok := annotations[api.AnnotationReload]
	if !ok {
		return ReloadHook{}, false, nil
	}
	bad := func(why string) (ReloadHook, bool, error) {
		return ReloadHook{}, true, fmt.Errorf("annotation %s=%q: %s (expected, e.g., \"POST http://:8080/-/reload\")", api.AnnotationReload, raw, why)
	}
	fields := strings.Fields(raw)
	if len(fields) != 2 {
		return bad("want a method and a URL")
	}
	h.Method = strings.ToUpper(fields[0])
	switch h.Method {
	case "GET", "POST", "PUT":
	default:
		return bad("the method is GET, POST or PUT")
	}
	u, err := url.Parse(fields[1])
	switch {
	case err != nil:
		return bad("the URL does not parse")
	case u.Scheme != "http" && u.Scheme != "https":
		return bad("the URL's scheme is http or https")
	case u.Hostname() != "" || u.User != nil:
		return bad("the URL names no host (the call goes to each pod's IP): write http://:PORT/path")
	}
	h.Scheme, h.Path = u.Scheme, u.EscapedPath()
	if u.RawQuery != "" {
		h.Path += "?" + u.RawQuery
	}
	if h.Port, err = strconv.Atoi(u.Port()); err != nil || h.Port < 1 || h.Port > 65535 {
		return bad("the URL needs a port (1-65535)")
	}
	h.Timeout = DefaultReloadTimeout
	if v, ok := annotations[api.AnnotationReloadTimeout]; ok {
		d, err := time.ParseDuration(strings.TrimSpace(v))
		if err != nil || d <= 0 || d > time.Hour {
			return ReloadHook{}, true, fmt.Errorf("annotation %s=%q: a duration between 1s and 1h, like 90s", api.AnnotationReloadTimeout, v)
		}
		h.Timeout = d
	}
	return h, true, nil
}

// ReloadAttempt records on the workload that its reload hook was called for a set of certificates
// (api.AnnotationReloadAttempt), so that it is called once per set and the fallback restart comes when
// its timeout has passed, across controller restarts.
type ReloadAttempt struct {
	Hash string    `json:"hash"`
	At   time.Time `json:"at"`
	// Failed is set when no pod's hook answered with a 2xx status: nothing waits for it.
	Failed  bool   `json:"failed,omitempty"`
	Message string `json:"message,omitempty"`
}

// ReadReloadAttempt reads the record; ok is false when there is none or it is unreadable.
func ReadReloadAttempt(annotations map[string]string) (a ReloadAttempt, ok bool) {
	raw := annotations[api.AnnotationReloadAttempt]
	if raw == "" || json.Unmarshal([]byte(raw), &a) != nil || a.Hash == "" {
		return ReloadAttempt{}, false
	}
	return a, true
}

// Annotation is the record as the annotation's value.
func (a ReloadAttempt) Annotation() string {
	a.At = a.At.UTC().Truncate(time.Second)
	data, _ := json.Marshal(a) // strings, a bool and a time: cannot fail
	return string(data)
}

// reloadFirst turns a due restart of a workload with a reload hook into a reload: the hook is called on
// every pod, then the pods are probed until they serve the new certificates (reloadedByItself records
// it) or the hook's timeout passes, and only then is the workload restarted. A hook that cannot be
// verified (the workload declares no TLS port) or whose every call failed does not hold the restart.
// It comes before governed: a workload a RolloutPolicy governs is reloaded too, at once (a reload is not
// a restart, so the policy's windows and order do not hold it), and only the fallback restart is the
// policy's. A suspended policy (a change freeze) holds its reloads too.
func reloadFirst(in Input, f facts) *Decision {
	if in.Reload == nil || in.PolicySuspended {
		return nil
	}
	h := *in.Reload
	a, tried := ReadReloadAttempt(in.Workload.Annotations)
	switch {
	case !in.Probed:
		return nil
	case !tried || a.Hash != in.Set.Hash:
		return &Decision{Action: ActionReload, Reason: api.ReasonReloading,
			Message: fmt.Sprintf("%d pod(s) run on old certificates; calling their reload hook %s instead of restarting (restart if they do not serve %s within %s)", len(f.stale), h, in.Set.Hash, h.Timeout)}
	case a.Failed:
		return nil
	}
	deadline := a.At.Add(h.Timeout)
	if !in.Now.Before(deadline) {
		return nil
	}
	return &Decision{Action: ActionWait, Reason: api.ReasonReloading, RequeueAfter: min(reloadPoll, deadline.Sub(in.Now)),
		Message: fmt.Sprintf("reload hook called at %s; %d pod(s) do not serve %s yet; restarting at %s if they still do not", a.At.UTC().Format(time.RFC3339), len(f.stale), in.Set.Hash, deadline.UTC().Format(time.RFC3339))}
}

// reloadNote says, on the restart that follows, why the reload did not do: "" when no reload was tried for
// the set.
func reloadNote(in Input) string {
	if in.Reload == nil {
		return ""
	}
	a, tried := ReadReloadAttempt(in.Workload.Annotations)
	switch {
	case !in.Probed:
		return "; its reload hook is not used: no TLS port to verify it by (" + api.AnnotationProbe + ")"
	case !tried || a.Hash != in.Set.Hash:
		return ""
	case a.Failed:
		return "; its reload hook failed: " + a.Message
	}
	return fmt.Sprintf("; its pods did not serve the new certificates within %s of the reload hook", in.Reload.Timeout)
}
