package cli

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"k8s.io/apimachinery/pkg/util/duration"
	"sigs.k8s.io/yaml"
)

// Output formats of -o.
const (
	OutputTable = "table"
	OutputWide  = "wide"
	OutputJSON  = "json"
	OutputYAML  = "yaml"
	// OutputHTML is a self-contained HTML page (check and plan only).
	OutputHTML = "html"
	// OutputKubeadm is exactly what `kubeadm certs check-expiration` prints (check only).
	OutputKubeadm = "kubeadm"
)

// ReportAPIVersion is the apiVersion of every JSON/YAML document the CLI prints. The documents are
// versioned schemas of their own (documented in docs/cli.md), not the internal types: fields are only
// added within a version.
const ReportAPIVersion = "certrollout.io/v1alpha1"

// OutputFlag is -o/--output.
type OutputFlag struct {
	Output string
	// html is set for the commands that can write an HTML page (addReportOutputFlag).
	html bool
	// kubeadm is set for check, which can print kubeadm's own text (-o kubeadm).
	kubeadm bool
}

func (o *OutputFlag) addOutputFlag(cmd *cobra.Command) {
	cmd.Flags().StringVarP(&o.Output, "output", "o", OutputTable, "Output format: table, wide (more columns), json or yaml.")
	_ = cmd.RegisterFlagCompletionFunc("output", func(*cobra.Command, []string, string) ([]string, cobra.ShellCompDirective) {
		return o.formats(), cobra.ShellCompDirectiveNoFileComp
	})
}

// addReportOutputFlag is addOutputFlag for commands that also write a self-contained HTML page.
func (o *OutputFlag) addReportOutputFlag(cmd *cobra.Command) {
	o.html = true
	o.addOutputFlag(cmd)
	cmd.Flags().Lookup("output").Usage = "Output format: table, wide (more columns), json, yaml or html (one self-contained page; redirect it to a file)."
}

// formats are the values -o takes.
func (o *OutputFlag) formats() []string {
	f := []string{OutputTable, OutputWide, OutputJSON, OutputYAML}
	if o.html {
		f = append(f, OutputHTML)
	}
	if o.kubeadm {
		f = append(f, OutputKubeadm)
	}
	return f
}

// validateOutput checks -o.
func (o *OutputFlag) validateOutput() error {
	if o.Output == "" {
		o.Output = OutputTable
	}
	f := o.formats()
	for _, v := range f {
		if o.Output == v {
			return nil
		}
	}
	return fmt.Errorf("--output must be %s or %s, not %q", strings.Join(f[:len(f)-1], ", "), f[len(f)-1], o.Output)
}

// structured reports whether -o asks for JSON or YAML.
func (o *OutputFlag) structured() bool { return o.Output == OutputJSON || o.Output == OutputYAML }

// page reports whether -o asks for an HTML page.
func (o *OutputFlag) page() bool { return o.Output == OutputHTML }

// progressWriter is where progress and notices go: stdout, or stderr when stdout carries a document.
func (o *OutputFlag) progressWriter(streams IOStreams) io.Writer {
	if o.structured() || o.page() {
		return streams.ErrOut
	}
	return streams.Out
}

// wide reports whether -o wide.
func (o *OutputFlag) wide() bool { return o.Output == OutputWide }

// printDocument writes v as indented JSON or as YAML, per -o.
func (o *OutputFlag) printDocument(w io.Writer, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	if o.Output == OutputYAML {
		if b, err = yaml.JSONToYAML(b); err != nil {
			return err
		}
		_, err = w.Write(b)
		return err
	}
	_, err = fmt.Fprintln(w, string(b))
	return err
}

// table writes aligned columns the way kubectl does: upper-case headers, three spaces between columns,
// "<none>" for an empty cell.
type table struct {
	tw *tabwriter.Writer
}

func newTable(w io.Writer, headers ...string) *table {
	t := &table{tw: tabwriter.NewWriter(w, 0, 8, 3, ' ', 0)}
	t.row(headers...)
	return t
}

func (t *table) row(cells ...string) {
	for i, c := range cells {
		if c == "" {
			cells[i] = "<none>"
		}
		cells[i] = strings.ReplaceAll(cells[i], "\t", " ")
	}
	fmt.Fprintln(t.tw, strings.Join(cells, "\t"))
}

func (t *table) flush() error { return t.tw.Flush() }

// residual is how long until t, as kubectl prints ages ("364d", "5h12m"), or "expired 3d ago" when past.
func residual(t, now time.Time) string {
	if t.IsZero() {
		return ""
	}
	d := t.Sub(now)
	if d < 0 {
		return "expired " + duration.HumanDuration(-d) + " ago"
	}
	return duration.HumanDuration(d)
}

// age is how long ago t was, as kubectl prints ages; "" for the zero time.
func age(t, now time.Time) string {
	if t.IsZero() {
		return ""
	}
	return duration.HumanDuration(now.Sub(t))
}

// timestamp formats t in UTC, RFC 3339, to the second; "" for the zero time.
func timestamp(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format(time.RFC3339)
}

// orElse is s, or alt when s is empty (plan_map.go has a twin, orDefault, left to plan's owner).
func orElse(s, alt string) string {
	if s == "" {
		return alt
	}
	return s
}
