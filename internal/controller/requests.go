package controller

import (
	"net/http"
	"strings"

	"github.com/prometheus/client_golang/prometheus"
	"k8s.io/client-go/rest"
)

var apiRequests = prometheus.NewCounterVec(prometheus.CounterOpts{
	Name: "certrollout_api_requests_total",
	Help: "Requests the controller sent to the Kubernetes API, by verb (LIST and WATCH told apart from GET) and resource.",
}, []string{"verb", "resource"})

// CountRequests wraps cfg's transport so every request is counted in certrollout_api_requests_total.
// Steady state should show WATCH only; a renewal, one PATCH per affected workload.
func CountRequests(cfg *rest.Config) {
	cfg.Wrap(func(rt http.RoundTripper) http.RoundTripper {
		return roundTripperFunc(func(req *http.Request) (*http.Response, error) {
			verb, resource := classify(req)
			apiRequests.WithLabelValues(verb, resource).Inc()
			return rt.RoundTrip(req)
		})
	})
}

type roundTripperFunc func(*http.Request) (*http.Response, error)

func (f roundTripperFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

// classify names a request's Kubernetes verb and resource from its method and path:
// /api/v1/[namespaces/NS/]RESOURCE[/NAME[/SUB]] or /apis/GROUP/VERSION/[namespaces/NS/]RESOURCE[/NAME[/SUB]].
func classify(req *http.Request) (verb, resource string) {
	parts := strings.Split(strings.Trim(req.URL.Path, "/"), "/")
	switch {
	case len(parts) >= 2 && parts[0] == "api":
		parts = parts[2:]
	case len(parts) >= 3 && parts[0] == "apis":
		parts = parts[3:]
	default:
		return strings.ToUpper(req.Method), "other"
	}
	if len(parts) >= 3 && parts[0] == "namespaces" {
		parts = parts[2:] // namespaced: drop namespaces/NS
	}
	if len(parts) == 0 {
		return strings.ToUpper(req.Method), "other"
	}
	resource = parts[0]
	collection := len(parts) == 1
	if len(parts) >= 3 {
		resource += "/" + parts[2]
	}
	switch req.Method {
	case http.MethodGet:
		switch {
		case req.URL.Query().Get("watch") == "true" || req.URL.Query().Get("watch") == "1":
			return "WATCH", resource
		case collection:
			return "LIST", resource
		default:
			return "GET", resource
		}
	case http.MethodPost:
		return "CREATE", resource
	case http.MethodPut:
		return "UPDATE", resource
	case http.MethodPatch:
		return "PATCH", resource
	case http.MethodDelete:
		return "DELETE", resource
	}
	return strings.ToUpper(req.Method), resource
}
