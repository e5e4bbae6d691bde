package controller

import (
	"net/http"
	"net/url"
	"testing"
)

func TestClassifyRequests(t *testing.T) {
	for name, tc := range map[string]struct {
		method, url, verb, resource string
	}{
		"a list of core Secrets in all namespaces": {"GET", "/api/v1/secrets?limit=500", "LIST", "secrets"},
		"a watch of Deployments":                   {"GET", "/apis/apps/v1/deployments?watch=true&resourceVersion=1", "WATCH", "deployments"},
		"a namespaced get":                         {"GET", "/apis/apps/v1/namespaces/a/deployments/web", "GET", "deployments"},
		"a namespaced list":                        {"GET", "/api/v1/namespaces/a/pods", "LIST", "pods"},
		"a patch":                                  {"PATCH", "/apis/apps/v1/namespaces/a/deployments/web", "PATCH", "deployments"},
		"an event":                                 {"POST", "/apis/events.k8s.io/v1/namespaces/a/events", "CREATE", "events"},
		"a status subresource":                     {"PUT", "/apis/apps/v1/namespaces/a/deployments/web/status", "UPDATE", "deployments/status"},
		"a lease update":                           {"PUT", "/apis/coordination.k8s.io/v1/namespaces/x/leases/l", "UPDATE", "leases"},
		"discovery":                                {"GET", "/apis", "GET", "other"},
	} {
		t.Run(name, func(t *testing.T) {
			u, err := url.Parse(tc.url)
			if err != nil {
				t.Fatal(err)
			}
			verb, res := classify(&http.Request{Method: tc.method, URL: u})
			if verb != tc.verb || res != tc.resource {
				t.Fatalf("got %s %s, want %s %s", verb, res, tc.verb, tc.resource)
			}
		})
	}
}
