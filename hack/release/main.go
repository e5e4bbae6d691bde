// Command release builds certrollout's release artefacts on a machine with nothing but Go: no container
// engine, no helm binary, no network. `make image` and `make release VERSION=vX.Y.Z` run it.
//
//	go run ./hack/release [flags] image     # dist/image/ and dist/certrollout-<version>-image.oci.tar
//	go run ./hack/release [flags] release   # everything, into dist/<version>/
//
// Everything it writes is reproducible: a release is built from an export of the commit, the binaries
// with -trimpath, no VCS stamp and linker flags that do not depend on when make ran; their build date and
// every archive's timestamps are SOURCE_DATE_EPOCH (else the commit's time), and archive entries are
// sorted with fixed owners. Two releases of one commit give identical checksums.
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"runtime"
	"strings"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	o, err := parse(args, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		_, _ = fmt.Fprintf(stderr, "release: %v\n", err)
		return 2
	}
	switch o.Mode {
	case "image":
		_, err = o.Image(stdout)
	case "release":
		_, err = o.Release(stdout)
	}
	if err != nil {
		_, _ = fmt.Fprintf(stderr, "release: %v\n", err)
		return 1
	}
	return 0
}

// Options configure one run. The zero values of the optional fields are the defaults `make` uses.
type Options struct {
	// Mode is "image" or "release".
	Mode string
	// Version is the release (and image tag), e.g. v0.1.0; a release requires semantic versioning.
	Version string
	// LDFlags are the Makefile's LDFLAGS (version stamps). The commit and build date are replaced by the
	// commit built and the source date, and -s -w are added.
	LDFlags string
	// Revision is the commit to release (a release is built from an export of it) and the one the
	// image's revision annotation names; empty for HEAD.
	Revision string
	// Root is the repository's top folder; the other paths are relative to it.
	Root string
	// Dist is where artefacts go: dist/image for `image`, dist/<version> for `release`.
	Dist string
	// Platforms are the os/arch pairs binaries and archives are built for (release only).
	Platforms []string
	// ImagePlatforms are the linux platforms of the image.
	ImagePlatforms []string
	// Chart is the Helm chart to package (release only).
	Chart string
}

var (
	defaultPlatforms      = []string{"linux/amd64", "linux/arm64", "darwin/amd64", "darwin/arm64"}
	defaultImagePlatforms = []string{"linux/amd64", "linux/arm64"}
)

func parse(args []string, stderr io.Writer) (Options, error) {
	fs := flag.NewFlagSet("release", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		_, _ = fmt.Fprintf(stderr, "Usage: go run ./hack/release [flags] image|release\n\n")
		fs.PrintDefaults()
	}
	var o Options
	var platforms, imagePlatforms string
	fs.StringVar(&o.Version, "version", "", "Release version (vX.Y.Z for a release; any image tag for image).")
	fs.StringVar(&o.LDFlags, "ldflags", "", "The Makefile's LDFLAGS: version and commit stamps.")
	fs.StringVar(&o.Revision, "revision", "", "Commit to build a release from, and to name in the image (default: HEAD).")
	fs.StringVar(&o.Root, "root", ".", "Repository root.")
	fs.StringVar(&o.Dist, "dist", "dist", "Output folder, relative to the root unless absolute.")
	fs.StringVar(&platforms, "platforms", strings.Join(defaultPlatforms, ","), "Platforms of the binaries and archives.")
	fs.StringVar(&imagePlatforms, "image-platforms", strings.Join(defaultImagePlatforms, ","), "Platforms of the OCI image.")
	fs.StringVar(&o.Chart, "chart", "charts/certrollout", "Helm chart to package, relative to the root unless absolute.")
	if err := fs.Parse(args); err != nil {
		return Options{}, err
	}
	if fs.NArg() != 1 || (fs.Arg(0) != "image" && fs.Arg(0) != "release") {
		fs.Usage()
		return Options{}, errors.New("name one of image or release")
	}
	o.Mode = fs.Arg(0)
	o.Platforms = splitList(platforms)
	o.ImagePlatforms = splitList(imagePlatforms)
	return o, nil
}

func splitList(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

// hostPlatform is the platform whose binaries this machine can run to check them.
func hostPlatform() string { return runtime.GOOS + "/" + runtime.GOARCH }
