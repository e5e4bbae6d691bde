package cli

import (
	"fmt"
	"sort"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/util/duration"

	api "github.com/certrollout/certrollout/api/v1alpha1"

	"github.com/certrollout/certrollout/internal/cagraph"
	"github.com/certrollout/certrollout/internal/certs"
)

// The document `check -o json|yaml` prints. These types are the schema (docs/check.md): fields are only
// added within certrollout.io/v1alpha1, never renamed or removed. They are not the internal types, which
// may change freely.

// CheckReport is everything one check found.
type CheckReport struct {
	APIVersion string `json:"apiVersion"`
	Kind       string `json:"kind"`
	// GeneratedAt is the time residual times and severities were computed against.
	GeneratedAt time.Time `json:"generatedAt"`
	// Status is the worst severity: OK, Warning or Critical (the exit code 0, 1 or 2).
	Status string `json:"status"`
	// Reason is the line printed on stderr when Status is not OK.
	Reason     string          `json:"reason,omitempty"`
	Thresholds CheckThresholds `json:"thresholds"`
	// Items are soonest-expiring first; items without a certificate come last.
	Items []CheckItem `json:"items"`
	// Problems are sources that could not be read or parsed, and keys or files that hold a private key
	// where a certificate is expected (Reason KeyWithoutCertificate).
	Problems []CheckProblem `json:"problems"`
	// CAIssuers are the cert-manager CA Issuers and ClusterIssuers in scope (a namespace's Issuers and
	// the ClusterIssuers that sign Certificates there; all under -A), with their CA and leaf counts.
	CAIssuers []CheckCAIssuer `json:"caIssuers,omitempty"`
	// CAIssuersIncomplete says which issuers could not be listed, and why (Forbidden).
	CAIssuersIncomplete string `json:"caIssuersIncomplete,omitempty"`
	// Controller says which controller settings the cluster was read with (cert-manager's cluster
	// resource namespace), and where they came from; absent when only disk was read.
	Controller *AssumedSettings `json:"controller,omitempty"`
	// Nodes are the control-plane nodes read with --control-plane: each agent report's age and the
	// components, and the control-plane nodes without a report.
	Nodes []CheckNode `json:"nodes,omitempty"`
	// NodesIncomplete says why control-plane nodes without a report may be missing from Nodes.
	NodesIncomplete string `json:"nodesIncomplete,omitempty"`
	// Probes are, with --probe, the certificates consumer pods serve on their TLS ports.
	Probes []WorkloadProbe `json:"probes,omitempty"`
}

// CheckNode is one control-plane node as its agent reported it (a NodeCertificates).
type CheckNode struct {
	Name string `json:"name"`
	// Report is Current, Stale (older than three agent heartbeats, or no scan yet) or Missing (a
	// control-plane Node, or a --node, without a NodeCertificates). Stale and Missing make the report a
	// Warning at least.
	Report string `json:"report"`
	// Warning says what is wrong with the report, in a sentence.
	Warning      string     `json:"warning,omitempty"`
	ObservedAt   *time.Time `json:"observedAt,omitempty"`
	AgentVersion string     `json:"agentVersion,omitempty"`
	KubeadmDir   string     `json:"kubeadmDir,omitempty"`
	// Components are the node's control-plane components and the kubelet.
	Components []CheckComponent `json:"components,omitempty"`
}

// CheckComponent is a control-plane component on a node.
type CheckComponent struct {
	Name string `json:"name"`
	// State is Current, ServesOld, NotRunning or Unreachable (NodeCertificates' states).
	State     string     `json:"state"`
	Manifest  string     `json:"manifest,omitempty"`
	StartedAt *time.Time `json:"startedAt,omitempty"`
	// OldSince is, in state ServesOld, since when the file it has not picked up is on disk.
	OldSince *time.Time `json:"oldSince,omitempty"`
	Message  string     `json:"message,omitempty"`
}

// CheckNodeFile is what the node agent says of a file on a control-plane node.
type CheckNodeFile struct {
	// Set is kubeadm, kubelet or etcd (an external etcd's folder).
	Set string `json:"set"`
	// RenewedBy is Kubeadm, Kubelet, Nobody or External.
	RenewedBy            string `json:"renewedBy,omitempty"`
	CertificateAuthority bool   `json:"certificateAuthority,omitempty"`
	// Since is when this certificate appeared at this path.
	Since *time.Time `json:"since,omitempty"`
	// Serving are the components that serve or use the file. One in state ServesOld makes the item a
	// Warning at least: the file was renewed, the component still runs on the old certificate.
	Serving []CheckServing `json:"serving,omitempty"`
}

// CheckServing is one component's use of a file, and what the agent saw.
type CheckServing struct {
	Component string `json:"component"`
	// Use is Serving or Client.
	Use string `json:"use"`
	// State is Current, ServesOld, NotRunning or Unreachable.
	State    string `json:"state"`
	Endpoint string `json:"endpoint,omitempty"`
	// Since is, in state ServesOld, since when the component has run on the old certificate.
	Since   *time.Time `json:"since,omitempty"`
	Message string     `json:"message,omitempty"`
}

// CheckIssuerRef names a cert-manager Issuer (with its namespace) or ClusterIssuer.
type CheckIssuerRef struct {
	// Kind is Issuer or ClusterIssuer.
	Kind      string `json:"kind"`
	Namespace string `json:"namespace,omitempty"`
	Name      string `json:"name"`
}

// CheckCAChain is how a leaf relates to the CA issuer that signs it (design/2026-11-24-ca-rotation.md).
type CheckCAChain struct {
	Issuer CheckIssuerRef `json:"issuer"`
	// Certificate is the cert-manager Certificate, in the Secret's namespace.
	Certificate string `json:"certificate"`
	// Status is Current, IssuedUnderPreviousCA, NotSignedByCurrentCA, NotIssued or Unknown (the CA
	// certificate could not be read). IssuedUnderPreviousCA and NotSignedByCurrentCA make the item a
	// Warning at least.
	Status string `json:"status"`
	// Message says why the leaf is not current.
	Message string `json:"message,omitempty"`
	// CAFingerprint is the hex SHA-256 of the issuer's current CA certificate.
	CAFingerprint string `json:"caFingerprint,omitempty"`
}

// CheckCAIssuer is one CA Issuer or ClusterIssuer.
type CheckCAIssuer struct {
	CheckIssuerRef `json:",inline"`
	// Secret is its CA Secret (a ClusterIssuer's is in cert-manager's cluster resource namespace).
	Secret CheckSource `json:"secret"`
	// CA is the certificate it signs with; absent when Problem says why.
	CA      *CheckCertificate `json:"ca,omitempty"`
	Problem string            `json:"problem,omitempty"`
	Ready   bool              `json:"ready"`
	// Cascade is its certrollout.io/cascade annotation.
	Cascade bool `json:"cascade"`
	// Leaves counts the Certificates in scope that name it; NotCurrent those not issued by its current CA.
	Leaves     int `json:"leaves"`
	NotCurrent int `json:"notCurrent"`
}

// CheckThresholds are --warn and --critical as given (empty when not set).
type CheckThresholds struct {
	Warn     string `json:"warn,omitempty"`
	Critical string `json:"critical,omitempty"`
}

// CheckItem is one place certificates are kept: a key of a Secret or ConfigMap, a file, or one entry of
// a kubeconfig.
type CheckItem struct {
	Source CheckSource `json:"source"`
	// Certificate is the earliest-expiring certificate there; absent when none is (a cert-manager
	// Certificate not issued yet).
	Certificate *CheckCertificate `json:"certificate,omitempty"`
	// Certificates counts the certificates there (a chain or a CA bundle holds several).
	Certificates int `json:"certificates"`
	// Severity is OK, Warning or Critical; absent for items without a certificate.
	Severity string `json:"severity,omitempty"`
	// CertManager is the cert-manager Certificate that issues the Secret.
	CertManager *CheckCertManager `json:"certManager,omitempty"`
	// Consumers are the workloads that use this key (cluster items only).
	Consumers []CheckConsumer `json:"consumers,omitempty"`
	// StalePods counts the consumers' pods that started before this key's certificates were issued.
	StalePods int `json:"stalePods,omitempty"`
	// Kubeadm is set for the files of a kubeadm control plane.
	Kubeadm *CheckKubeadm `json:"kubeadm,omitempty"`
	// CAChain is set on the tls.crt of a Certificate signed by a cert-manager CA issuer (and on its
	// not-issued item): whether it chains to the issuer's current CA.
	CAChain *CheckCAChain `json:"caChain,omitempty"`
	// CAOf names the CA issuers whose CA Secret this key is.
	CAOf []CheckIssuerRef `json:"caOf,omitempty"`
	// ControlPlane is set for the files of a control-plane node (Source.Kind ControlPlane).
	ControlPlane *CheckNodeFile `json:"controlPlane,omitempty"`
	// PodCertificate is set for a PodCertificateRequest (check_native.go).
	PodCertificate *CheckPodCertificate `json:"podCertificate,omitempty"`
}

// CheckSource says where certificates were found.
type CheckSource struct {
	// Kind is Secret, ConfigMap, File or ControlPlane (a file on a control-plane node, as its node
	// agent reported it).
	Kind      string `json:"kind"`
	Namespace string `json:"namespace,omitempty"`
	// Node is the control-plane node of a ControlPlane source.
	Node string `json:"node,omitempty"`
	// Name is the object's name; for a file, its short name (kubeadm's name, or the path relative to
	// the folder or glob it was found by).
	Name string `json:"name"`
	// Key is the data key of a Secret or ConfigMap.
	Key string `json:"key,omitempty"`
	// Path is the file's path.
	Path string `json:"path,omitempty"`
	// Entry is where in a kubeconfig: cluster/<name> or user/<name>.
	Entry string `json:"entry,omitempty"`
}

// CheckCertificate is one certificate's facts.
type CheckCertificate struct {
	Subject    string `json:"subject"`
	CommonName string `json:"commonName,omitempty"`
	Issuer     string `json:"issuer"`
	// IssuerCommonName is the issuer's CN.
	IssuerCommonName string `json:"issuerCommonName,omitempty"`
	// SerialNumber is hex.
	SerialNumber string `json:"serialNumber"`
	// Fingerprint is the hex SHA-256 of the DER encoding.
	Fingerprint string    `json:"fingerprint"`
	NotBefore   time.Time `json:"notBefore"`
	NotAfter    time.Time `json:"notAfter"`
	IsCA        bool      `json:"isCA"`
	DNSNames    []string  `json:"dnsNames,omitempty"`
	IPAddresses []string  `json:"ipAddresses,omitempty"`
}

// CheckCertManager is what cert-manager reports about the Certificate that issues a Secret.
type CheckCertManager struct {
	// Name of the Certificate, in the Secret's namespace.
	Name     string `json:"name"`
	Revision int    `json:"revision"`
	Ready    bool   `json:"ready"`
	// Message explains a Ready condition that is not True.
	Message string `json:"message,omitempty"`
	// RenewalTime is when cert-manager renews next.
	RenewalTime *time.Time `json:"renewalTime,omitempty"`
	// StatusCurrent is false when the Certificate's status still describes the previous certificate
	// (cert-manager writes the Secret before its status).
	StatusCurrent bool `json:"statusCurrent"`
}

// CheckConsumer is a workload that uses a key.
type CheckConsumer struct {
	// Kind is Deployment, StatefulSet, DaemonSet, CronJob or Pod.
	Kind string `json:"kind"`
	Name string `json:"name"`
	// StalePods are its pods that started before the key's certificates were issued.
	StalePods []string `json:"stalePods,omitempty"`
}

// CheckKubeadm is a kubeadm control plane file as `kubeadm certs check-expiration` names it.
type CheckKubeadm struct {
	// Name is kubeadm's: apiserver, etcd-peer, admin.conf, ca...
	Name string `json:"name"`
	// CertificateAuthority is the kubeadm name of the CA that signed it (ca, etcd-ca, front-proxy-ca);
	// empty for the CAs themselves and when no CA of the folder signed it.
	CertificateAuthority string `json:"certificateAuthority,omitempty"`
	// ExternallyManaged is true when the signing CA's key is not in the folder: kubeadm cannot renew it.
	ExternallyManaged bool `json:"externallyManaged"`
}

// CheckProblem is a source whose certificates could not be read, and why.
type CheckProblem struct {
	Source  CheckSource `json:"source"`
	Message string      `json:"message"`
	// Reason is KeyWithoutCertificate for a private key where a certificate is expected (a warning);
	// empty for data that could not be read (critical).
	Reason string `json:"reason,omitempty"`
}

// keyWithoutCertificate is the problem row of a file or key that holds a private key and no certificate.
func keyWithoutCertificate(src CheckSource) CheckProblem {
	where := "the certificate is usually in a file beside it (cert.pem, tls.crt)"
	if src.Kind != checkKindFile {
		where = "a workload that reads a certificate here fails to load it"
	}
	return CheckProblem{Source: src, Reason: api.ReasonKeyWithoutCertificate,
		Message: "holds a private key and no certificate: " + where}
}

// checkResult is what Run read, in sections; nil sections were not asked for.
type checkResult struct {
	now          time.Time
	cluster      *checkSection
	kubeadm      *checkSection
	files        *checkSection
	controlPlane *checkSection
}

// checkSection is the items and problems of one kind of source, and how to print them.
type checkSection struct {
	items    []CheckItem
	problems []CheckProblem
	// namespace is the namespace read, "" for all (cluster sections).
	namespace string
	// dir is the kubeadm folder.
	dir string
	// caIssuers and caIncomplete are the CA graph (cluster sections).
	caIssuers    []CheckCAIssuer
	caIncomplete string
	// assumed are the controller settings a cluster section was read with.
	assumed *AssumedSettings
	// nodes and nodeObjects are the control-plane section's nodes and what their agents wrote.
	nodes       []CheckNode
	nodeObjects []*api.NodeCertificates
	// probes are what consumer pods serve (--probe); nil without it.
	probes []WorkloadProbe
}

func (r *checkResult) sections() []*checkSection {
	var out []*checkSection
	for _, s := range []*checkSection{r.kubeadm, r.controlPlane, r.files, r.cluster} {
		if s != nil {
			out = append(out, s)
		}
	}
	return out
}

// report builds the document and sets each item's severity from the thresholds.
func (r *checkResult) report(o *CheckOptions) CheckReport {
	rep := CheckReport{
		APIVersion: ReportAPIVersion, Kind: "CheckReport", GeneratedAt: r.now,
		Thresholds: CheckThresholds{Warn: o.Warn, Critical: o.Critical},
		Items:      []CheckItem{}, Problems: []CheckProblem{},
	}
	for _, s := range r.sections() {
		for i := range s.items {
			if c := s.items[i].Certificate; c != nil {
				s.items[i].Severity = checkSeverity(c.NotAfter, r.now, o.warn, o.critical)
			}
		}
		for i := range s.items {
			// A leaf its issuer's current CA did not issue still works, but its ca.crt names a CA on its
			// way out (or, with a rotated key, one that no longer signs): a warning, whatever its expiry.
			if it := &s.items[i]; it.Severity == SeverityOK && it.CAChain != nil && cagraph.Status(it.CAChain.Status).NeedsReissue() {
				it.Severity = SeverityWarning
			}
			// A renewed file a component has not picked up: the node still runs on the old certificate,
			// which expires as if nothing was renewed. A restart fixes it, hence a warning.
			if it := &s.items[i]; it.Severity == SeverityOK && servesOld(*it) != nil {
				it.Severity = SeverityWarning
			}
		}
		rep.Items = append(rep.Items, s.items...)
		rep.Problems = append(rep.Problems, s.problems...)
		rep.CAIssuers = append(rep.CAIssuers, s.caIssuers...)
		rep.Probes = append(rep.Probes, s.probes...)
		if s.assumed != nil {
			rep.Controller = s.assumed
		}
		if s == r.controlPlane {
			rep.Nodes = s.nodes
			rep.NodesIncomplete = s.caIncomplete
		} else if s.caIncomplete != "" {
			rep.CAIssuersIncomplete = s.caIncomplete
		}
	}
	sortCheckItems(rep.Items)
	rep.Status, rep.Reason = checkVerdict(rep.Items, rep.Problems, r.now, o)
	if w := nodeWarnings(rep.Nodes); len(w) > 0 && rep.Status == SeverityOK {
		// A node nobody reports on may hold a certificate about to expire: look at it.
		rep.Status = SeverityWarning
		rep.Reason = "WARNING: " + w[0]
		if len(w) > 1 {
			rep.Reason += fmt.Sprintf(" (%d nodes in all)", len(w))
		}
	}
	return rep
}

// checkSeverity applies the thresholds to one expiry. An expired certificate is critical with or without
// --critical: nothing that serves or trusts it works any more.
func checkSeverity(notAfter, now time.Time, warn, critical time.Duration) string {
	left := notAfter.Sub(now)
	switch {
	case left <= 0:
		return SeverityCritical
	case critical > 0 && left <= critical:
		return SeverityCritical
	case warn > 0 && left <= warn:
		return SeverityWarning
	default:
		return SeverityOK
	}
}

// sortCheckItems orders items soonest-expiring first, then by where they are; items without a certificate
// last.
func sortCheckItems(items []CheckItem) {
	sort.SliceStable(items, func(i, j int) bool {
		a, b := items[i], items[j]
		if (a.Certificate == nil) != (b.Certificate == nil) {
			return a.Certificate != nil
		}
		if a.Certificate != nil && !a.Certificate.NotAfter.Equal(b.Certificate.NotAfter) {
			return a.Certificate.NotAfter.Before(b.Certificate.NotAfter)
		}
		return a.Source.sortKey() < b.Source.sortKey()
	})
}

func (s CheckSource) sortKey() string {
	return strings.Join([]string{s.Kind, s.Namespace, s.Node, s.Name, s.Key, s.Path, s.Entry}, "\x00")
}

// checkVerdict is the report's status and the one line that says why: the soonest item of the worst
// severity, or the first problem.
func checkVerdict(items []CheckItem, problems []CheckProblem, now time.Time, o *CheckOptions) (status, reason string) {
	var worst *CheckItem
	due := 0
	for i := range items {
		it := &items[i]
		if it.Severity == "" || it.Severity == SeverityOK {
			continue
		}
		due++
		// items are soonest first, so the first of the worst severity is the soonest offender.
		if worst == nil || (it.Severity == SeverityCritical && worst.Severity != SeverityCritical) {
			worst = it
		}
	}
	status = SeverityOK
	if worst != nil {
		status = worst.Severity
		c := worst.Certificate
		when := fmt.Sprintf("expires in %s (%s)", residual(c.NotAfter, now), timestamp(c.NotAfter))
		switch {
		case worst.Severity != checkSeverity(c.NotAfter, now, o.warn, o.critical) && servesOld(*worst) != nil:
			// Raised by a component that has not picked the renewed file up.
			u := servesOld(*worst)
			when = fmt.Sprintf("was renewed, but %s on %s still runs on the old certificate", u.Component, worst.Source.Node)
			if u.Since != nil {
				when += " (since " + duration.HumanDuration(now.Sub(*u.Since)) + ")"
			}
			when += ": restart " + u.Component + " on " + worst.Source.Node
		case worst.Severity != checkSeverity(c.NotAfter, now, o.warn, o.critical):
			// Raised by its CA chain, not by its expiry.
			ch := worst.CAChain
			when = fmt.Sprintf("is not issued by the current CA of %s (%s: %s); re-issue it: %s", issuerRefString(ch.Issuer), ch.Status, ch.Message, renewHint(ch.Certificate, worst.Source.Namespace))
		case !c.NotAfter.After(now):
			when = fmt.Sprintf("%s (%s)", residual(c.NotAfter, now), timestamp(c.NotAfter))
		case worst.Severity == SeverityCritical:
			when += ", within --critical " + o.Critical
		default:
			when += ", within --warn " + o.Warn
		}
		reason = fmt.Sprintf("%s: %s %s", strings.ToUpper(status), worst.Source.describe(), when)
		if due > 1 {
			reason += fmt.Sprintf(" (%d certificates in all need attention)", due)
		}
	}
	var unreadable, keys []CheckProblem
	for _, p := range problems {
		if p.Reason == api.ReasonKeyWithoutCertificate {
			keys = append(keys, p)
		} else {
			unreadable = append(unreadable, p)
		}
	}
	if len(unreadable) > 0 {
		// Certificate data that cannot be parsed breaks whatever loads it as surely as an expiry.
		p := unreadable[0]
		what := fmt.Sprintf("%s: %s", p.Source.describe(), p.Message)
		if len(unreadable) > 1 {
			what = fmt.Sprintf("%d certificate sources could not be read; the first: %s", len(unreadable), what)
		} else {
			what = "certificate data could not be read: " + what
		}
		if status == SeverityCritical {
			reason += "; " + what
		} else {
			status = SeverityCritical
			reason = "CRITICAL: " + what
		}
	}
	if len(keys) > 0 && status == SeverityOK {
		// A key where a certificate belongs is a mistake to look at, not an outage yet.
		p := keys[0]
		status = SeverityWarning
		reason = fmt.Sprintf("WARNING: %s holds a private key and no certificate", p.Source.describe())
		if len(keys) > 1 {
			reason += fmt.Sprintf(" (%d in all)", len(keys))
		}
	}
	return status, reason
}

// describe names a source in messages: "Secret prod/api-tls tls.crt", "file /etc/kubernetes/admin.conf
// (user/kubernetes-admin)".
func (s CheckSource) describe() string {
	if s.Kind == checkKindControlPlane {
		return s.Name + " on node " + s.Node + " (" + s.Path + ")"
	}
	if s.Kind == checkKindFile {
		d := "file " + s.Path
		if s.Entry != "" {
			d += " (" + s.Entry + ")"
		}
		return d
	}
	d := s.Kind + " " + s.Namespace + "/" + s.Name
	if s.Namespace == "" { // cluster-scoped: a ClusterTrustBundle
		d = s.Kind + " " + s.Name
	}
	if s.Key != "" {
		d += " " + s.Key
	}
	return d
}

// issuerRefString reads like "Issuer shop/ca" or "ClusterIssuer root".
func issuerRefString(r CheckIssuerRef) string {
	if r.Namespace == "" {
		return r.Kind + " " + r.Name
	}
	return r.Kind + " " + r.Namespace + "/" + r.Name
}

// renewHint is the command that re-issues a cert-manager Certificate.
func renewHint(certificate, ns string) string {
	return "certrollout renew " + certificate + " -n " + ns
}

// checkKindFile is CheckSource.Kind for certificates on disk.
const checkKindFile = "File"

// checkCertificate converts certs' facts to the schema.
func checkCertificate(c *certs.Certificate) *CheckCertificate {
	return &CheckCertificate{
		Subject: c.Subject, CommonName: checkCommonName(c.Subject), Issuer: c.Issuer, IssuerCommonName: checkCommonName(c.Issuer),
		SerialNumber: c.SerialNumber, Fingerprint: c.Fingerprint,
		NotBefore: c.NotBefore.UTC(), NotAfter: c.NotAfter.UTC(), IsCA: c.IsCA,
		DNSNames: c.DNSNames, IPAddresses: c.IPAddresses,
	}
}

// checkCommonName extracts CN from a distinguished name as pkix.Name.String writes it ("CN=a\,b,O=x"),
// honouring backslash escapes; "" when there is none.
func checkCommonName(dn string) string {
	var parts []string
	var cur strings.Builder
	escaped := false
	for _, r := range dn {
		switch {
		case escaped:
			cur.WriteRune(r)
			escaped = false
		case r == '\\':
			escaped = true
		case r == ',' || r == '+':
			parts = append(parts, cur.String())
			cur.Reset()
		default:
			cur.WriteRune(r)
		}
	}
	parts = append(parts, cur.String())
	for _, p := range parts {
		if v, ok := strings.CutPrefix(p, "CN="); ok {
			return v
		}
	}
	return ""
}
