package controller

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/klog/v2"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	api "github.com/certrollout/certrollout/api/v1alpha1"
	"github.com/certrollout/certrollout/internal/decide"
	"github.com/certrollout/certrollout/internal/restart"
)

// reloadCallTimeout bounds one call of a pod's reload hook.
const reloadCallTimeout = 5 * time.Second

// reload calls the workload's reload hook on each pod that runs on old certificates, then records the
// attempt on the workload (decide.ReloadAttempt): the next decisions probe the pods until they serve the
// new certificates, or restart the workload when the hook's timeout passes or every call failed.
func (r *workloadReconciler) reload(ctx context.Context, obj client.Object, d decide.Decision, in decide.Input) (ctrl.Result, error) {
	h := *in.Reload
	var pods []decide.Pod
	for _, p := range in.Pods {
		if p.IP != "" && slices.Contains(d.StalePods, p.Name) {
			pods = append(pods, p)
		}
	}
	results := make([]string, len(pods))
	failed := make([]bool, len(pods))
	todo := make([]int, len(pods))
	for i := range pods {
		todo[i] = i
	}
	r.prober.each(ctx, todo, func(i int) {
		if err := r.prober.callHook(ctx, h, pods[i].IP); err != nil {
			results[i], failed[i] = pods[i].Name+": "+err.Error(), true
		}
	})
	var errs []string
	for i, msg := range results {
		if failed[i] {
			errs = append(errs, msg)
		}
	}
	ok := len(pods) - len(errs)
	a := decide.ReloadAttempt{Hash: d.Set.Hash, At: in.Now, Failed: ok == 0,
		Message: fmt.Sprintf("%s answered on %d of %d pod(s)", h, ok, len(pods))}
	if len(errs) > 0 {
		a.Message += "; " + strings.Join(errs, "; ")
	}
	if err := restart.Annotate(ctx, r.client, obj, map[string]string{api.AnnotationReloadAttempt: a.Annotation()}); err != nil {
		return ctrl.Result{}, err
	}
	eventType, note := corev1.EventTypeNormal, fmt.Sprintf("Called the reload hook for certificates %s: %s; waiting up to %s for the pods to serve them", d.Set.Hash, a.Message, h.Timeout)
	if a.Failed {
		eventType, note = corev1.EventTypeWarning, fmt.Sprintf("The reload hook failed for certificates %s: %s; restarting instead", d.Set.Hash, a.Message)
	}
	r.recorder.Eventf(obj, nil, eventType, api.ReasonReloading, "Reload", "%s", fitNote(note))
	ctrl.LoggerFrom(ctx).Info("Called a reload hook", "workload", klog.KObj(obj), "hash", d.Set.Hash, "hook", h.String(), "answered", ok, "pods", len(pods))
	return ctrl.Result{RequeueAfter: time.Second}, nil
}

// callHook makes the hook's call to the pod at ip; a status other than 2xx is an error quoting the start
// of the answer. Redirects are not followed and no proxy is used: the call goes to the pod and only to it.
func (p *prober) callHook(ctx context.Context, h decide.ReloadHook, ip string) error {
	ctx, cancel := context.WithTimeout(ctx, reloadCallTimeout)
	defer cancel()
	dial := (&net.Dialer{}).DialContext
	if p.Dialer != nil {
		dial = p.Dialer.DialContext
	}
	c := &http.Client{
		Transport: &http.Transport{
			DialContext: dial, Proxy: nil, DisableKeepAlives: true,
			// The pod may still present the certificate this call is to replace.
			TLSClientConfig: &tls.Config{InsecureSkipVerify: true, MinVersion: tls.VersionTLS12}, //nolint:gosec // a call to the pod itself, by IP
		},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	req, err := http.NewRequestWithContext(ctx, h.Method, h.URL(ip), http.NoBody)
	if err != nil {
		return err
	}
	req.Header.Set("User-Agent", "certrollout")
	resp, err := c.Do(req)
	if err != nil {
		return err
	}
	defer func() { _ = resp.Body.Close() }()
	if resp.StatusCode/100 != 2 {
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 200))
		return fmt.Errorf("%s: %s", resp.Status, strings.TrimSpace(string(body)))
	}
	return nil
}
