package cli

import (
	"context"
	"fmt"
	"io"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/spf13/cobra"
	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"

	api "github.com/certrollout/certrollout/api/v1alpha1"
	"github.com/certrollout/certrollout/internal/controller"
	workloadkinds "github.com/certrollout/certrollout/internal/kinds"
	"github.com/certrollout/certrollout/internal/probe"
)

// probeParallel bounds the pods probed at once: each probe is a port-forward through the API server,
// and a check of a large namespace must not open hundreds of them together.
const probeParallel = 4

// shortFingerprint is how many hex digits of a fingerprint the tables print; -o json/yaml print all.
const shortFingerprint = 12

// ProbeFlags are --probe and --probe-timeout, shared by check and plan.
type ProbeFlags struct {
	// Probe asks each consumer's running pods, through the API server's port-forward, which
	// certificate they serve.
	Probe bool
	// ProbeTimeout bounds one port's probe (dial and handshake).
	ProbeTimeout time.Duration
}

func (f *ProbeFlags) addProbeFlags(cmd *cobra.Command) {
	cmd.Flags().BoolVar(&f.Probe, "probe", false, "Connect to each consumer pod's TLS ports through the API server's port-forward and compare the certificate it serves with the one it should (needs create on pods/portforward).")
	cmd.Flags().DurationVar(&f.ProbeTimeout, "probe-timeout", probe.DefaultTimeout, "With --probe, how long one port may take to connect and complete the TLS handshake.")
}

// Verdicts of a probed pod, as printed.
const (
	probeCurrent   = "current"
	probeOld       = "OLD"
	probeNotProbed = "not probed"
)

// WorkloadProbe is what the pods of one workload serve on their TLS ports (--probe).
type WorkloadProbe struct {
	Namespace string `json:"namespace"`
	Kind      string `json:"kind"`
	Name      string `json:"name"`
	// ServerName is the SNI name sent (the first DNS name of the workload's certificates).
	ServerName string `json:"serverName,omitempty"`
	// Expected are the fingerprints of the leaf certificates the workload uses now.
	Expected []string `json:"expected"`
	// Problem says why its pods were not probed (a bad certrollout.io/probe annotation).
	Problem string     `json:"problem,omitempty"`
	Pods    []PodProbe `json:"pods,omitempty"`
}

// PodProbe is one pod's answer.
type PodProbe struct {
	Name string `json:"name"`
	// Verdict is current, OLD or "not probed"; Reason says why not probed.
	Verdict string      `json:"verdict"`
	Reason  string      `json:"reason,omitempty"`
	Ports   []PortProbe `json:"ports"`
}

// PortProbe is one port of one pod.
type PortProbe struct {
	Port int32  `json:"port"`
	Name string `json:"name,omitempty"`
	// Served is the SHA-256 fingerprint of the leaf the port presented.
	Served string `json:"served,omitempty"`
	Error  string `json:"error,omitempty"`
}

// probeTarget is a workload with TLS ports, and what to send and expect.
type probeTarget struct {
	report WorkloadProbe
	expect probe.Expectation
	ports  []probe.Port
	pods   []string
}

// probeTargets picks the workloads with TLS ports (probe.Ports on the workload's annotations, else its
// pod template's) and certificates to compare with.
func probeTargets(workloads []controller.Workload) []probeTarget {
	var out []probeTarget
	for i := range workloads {
		w := &workloads[i]
		set := w.Input.Set
		if len(set.Leaves) == 0 {
			continue // a set of CAs says nothing of what a pod serves
		}
		k, ok := workloadkinds.Named(w.Kind)
		if !ok {
			continue
		}
		ports, err := probe.Ports(probeAnnotations(w.Object), k.PodSpec(w.Object))
		t := probeTarget{report: WorkloadProbe{Namespace: w.Namespace, Kind: w.Kind, Name: w.Name,
			ServerName: probe.ServerName(set.ServerNames), Expected: set.Leaves}, expect: set.Expectation(), ports: ports}
		if err != nil {
			t.report.Problem = err.Error()
		}
		if len(ports) == 0 && err == nil {
			continue
		}
		for _, p := range w.Input.Pods {
			t.pods = append(t.pods, p.Name)
		}
		out = append(out, t)
	}
	return out
}

// probeAnnotations are the workload's annotations when they declare certrollout.io/probe, else its pod
// template's: the annotation is documented on the workload, and charts often only template the pods'.
func probeAnnotations(obj client.Object) map[string]string {
	if _, ok := obj.GetAnnotations()[api.AnnotationProbe]; ok {
		return obj.GetAnnotations()
	}
	var tmpl map[string]string
	switch o := obj.(type) {
	case *appsv1.Deployment:
		tmpl = o.Spec.Template.Annotations
	case *appsv1.StatefulSet:
		tmpl = o.Spec.Template.Annotations
	case *appsv1.DaemonSet:
		tmpl = o.Spec.Template.Annotations
	case *batchv1.CronJob:
		tmpl = o.Spec.JobTemplate.Spec.Template.Annotations
	}
	if _, ok := tmpl[api.AnnotationProbe]; ok {
		return tmpl
	}
	return obj.GetAnnotations()
}

// probeWorkloads probes the running pods of every workload with TLS ports through the API server's
// port-forward, a few pods at a time. A pod that cannot be probed is reported as such; nothing here
// fails the command.
func probeWorkloads(ctx context.Context, cfg *rest.Config, timeout time.Duration, workloads []controller.Workload) ([]WorkloadProbe, error) {
	targets := probeTargets(workloads)
	if len(targets) == 0 {
		return []WorkloadProbe{}, nil
	}
	dialer, err := probe.NewPortForwardDialer(cfg)
	if err != nil {
		return nil, fmt.Errorf("--probe: %w", err)
	}
	return probeAll(ctx, probe.Prober{Dialer: dialer, Timeout: timeout}, targets), nil
}

// probeAll is probeWorkloads with the prober given (tests dial their own listeners).
func probeAll(ctx context.Context, prober probe.Prober, targets []probeTarget) []WorkloadProbe {
	out := make([]WorkloadProbe, len(targets))
	sem := make(chan struct{}, probeParallel)
	var wg sync.WaitGroup
	for i := range targets {
		t := &targets[i]
		out[i] = t.report
		out[i].Pods = make([]PodProbe, len(t.pods))
		for j, pod := range t.pods {
			// Taking the slot before starting the goroutine keeps a namespace of thousands of pods to
			// probeParallel goroutines, not one per pod.
			sem <- struct{}{}
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer func() { <-sem }()
				served := prober.Pod(ctx, t.report.Namespace+"/"+pod, t.ports, t.report.ServerName)
				out[i].Pods[j] = podProbe(pod, served, t.expect)
			}()
		}
	}
	wg.Wait()
	return out
}

// podProbe judges one pod with probe.Expectation.Judge, the rule the controller applies.
func podProbe(pod string, served []probe.Served, expected probe.Expectation) PodProbe {
	p := PodProbe{Name: pod, Ports: make([]PortProbe, 0, len(served))}
	for _, s := range served {
		pp := PortProbe{Port: s.Port.Number, Name: s.Port.Name}
		if s.OK() {
			pp.Served = s.Leaf.Fingerprint
		} else if s.Err != nil {
			pp.Error = s.Err.Error()
		}
		p.Ports = append(p.Ports, pp)
	}
	switch expected.Judge(served) {
	case probe.Current:
		p.Verdict = probeCurrent
	case probe.Old:
		p.Verdict = probeOld
	case probe.NotProbed:
		p.Verdict = probeNotProbed
		p.Reason = "it serves no certificate of its set"
		for _, pp := range p.Ports {
			if pp.Error != "" {
				p.Reason = fmt.Sprintf("port %d: %s", pp.Port, pp.Error)
				break
			}
		}
	}
	return p
}

// short cuts a fingerprint for a table.
func short(fp string) string {
	if len(fp) > shortFingerprint {
		return fp[:shortFingerprint]
	}
	return fp
}

// probeTable prints one row per probed port: the pod, what it served, what it should serve, and the
// verdict. Workloads whose annotation is wrong get one row saying so.
func probeTable(w io.Writer, probes []WorkloadProbe) error {
	t := newTable(w, "NAMESPACE", "WORKLOAD", "POD", "PORT", "SERVED", "EXPECTED", "VERDICT")
	for _, wp := range probes {
		name := strings.ToLower(wp.Kind) + "/" + wp.Name
		expected := ""
		for i, fp := range wp.Expected {
			if i > 0 {
				expected += ","
			}
			expected += short(fp)
		}
		if wp.Problem != "" {
			t.row(wp.Namespace, name, "-", "-", "-", expected, probeNotProbed+": "+wp.Problem)
		}
		if len(wp.Pods) == 0 && wp.Problem == "" {
			t.row(wp.Namespace, name, "-", "-", "-", expected, probeNotProbed+": no running pods")
		}
		for _, p := range wp.Pods {
			for _, pp := range p.Ports {
				verdict := p.Verdict
				switch {
				case pp.Error != "":
					verdict = probeNotProbed + ": " + pp.Error
				case p.Verdict == probeOld && slices.Contains(wp.Expected, pp.Served):
					verdict = probeCurrent // this port is current; another port of the pod is not
				}
				t.row(wp.Namespace, name, p.Name, probe.Port{Number: pp.Port, Name: pp.Name}.String(), short(pp.Served), expected, verdict)
			}
		}
	}
	return t.flush()
}

// noProbes says why --probe printed no table.
func noProbes(w io.Writer) {
	fmt.Fprintln(w, "No workloads to probe: none with certificates has TLS ports (annotation "+api.AnnotationProbe+", or container ports named https or *tls*).")
}

// decisionProber is what plan --probe decides with: the controller's probes of pod IPs, sent through the
// API server's port-forward to the pod found at each IP in namespace ns ("" for all).
func decisionProber(cfg *rest.Config, ns string) (probe.Dialer, error) {
	forward, err := probe.NewPortForwardDialer(cfg)
	if err != nil {
		return nil, fmt.Errorf("--probe: %w", err)
	}
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return nil, err
	}
	return probe.PodIPDialer{Forward: forward, Lookup: func(ctx context.Context, ip string) (string, string, error) {
		return podAt(ctx, cs, ns, ip)
	}}, nil
}

// podAt finds the one running pod with IP ip; host-network pods share their node's IP and are not
// probed by IP.
func podAt(ctx context.Context, cs kubernetes.Interface, ns, ip string) (string, string, error) {
	pods, err := cs.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{FieldSelector: "status.podIP=" + ip + ",status.phase=Running"})
	if err != nil {
		return "", "", err
	}
	var found []corev1.Pod
	for _, p := range pods.Items {
		if p.DeletionTimestamp == nil && !p.Spec.HostNetwork {
			found = append(found, p)
		}
	}
	if len(found) != 1 {
		return "", "", fmt.Errorf("%d running pods have IP %s", len(found), ip)
	}
	return found[0].Namespace, found[0].Name, nil
}
