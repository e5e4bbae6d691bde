// Package image builds certrollout's container image without a container engine, with
// go-containerregistry: one OCI index over one OCI image per platform, each image a single layer holding
// the static binary, a passwd/group naming the non-root user, an empty /tmp and the licence.
//
// The contract is reproducibility: the same binaries, licence, version, revision and creation time give
// byte-identical blobs and therefore the same digests. Every timestamp in the image (the config's created
// time, its history, the layer's file times) is Options.Created, the tar entries are sorted with fixed
// owners, and gzip is written without a name or time. Build returns the index; WriteLayout stores it as
// an OCI image layout and WriteArchive packs that layout into the tar that skopeo, crane and docker load
// accept. Unpack is the reverse, for tests and tools that need a platform's root filesystem.
package image

import (
	"errors"
	"fmt"
	"regexp"
	"slices"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// What the image says about itself; the Dockerfile carries the same values.
const (
	// Repository is where releases are pushed; a loaded archive is named Repository:<version>.
	Repository  = "ghcr.io/certrollout/certrollout"
	SourceURL   = "https://github.com/certrollout/certrollout"
	Licenses    = "Apache-2.0"
	Title       = "certrollout"
	Description = "Restarts the workloads that use a renewed certificate, safely: controller and kubectl plugin."

	// User is the image's user and group: distroless's "nonroot", which Kubernetes' runAsNonRoot accepts
	// because it is numeric.
	User = "65532:65532"
	// BinaryPath is the binary's place in the image, its entrypoint.
	BinaryPath = "/certrollout"
)

// The OCI annotation and label keys the image sets (image-spec annotations.md), and the containerd one
// that names the image when an archive is loaded.
const (
	AnnotationVersion     = "org.opencontainers.image.version"
	AnnotationRevision    = "org.opencontainers.image.revision"
	AnnotationSource      = "org.opencontainers.image.source"
	AnnotationLicenses    = "org.opencontainers.image.licenses"
	AnnotationTitle       = "org.opencontainers.image.title"
	AnnotationDescription = "org.opencontainers.image.description"
	AnnotationCreated     = "org.opencontainers.image.created"
	AnnotationURL         = "org.opencontainers.image.url"
	AnnotationRefName     = "org.opencontainers.image.ref.name"
	AnnotationImageName   = "io.containerd.image.name"
)

// Platforms are the platforms a release image is built for.
var Platforms = []string{"linux/amd64", "linux/arm64"}

// Options describe one build of the image.
type Options struct {
	// Version is the image's tag and org.opencontainers.image.version, e.g. v0.1.0.
	Version string
	// Revision is the git commit the binaries were built from.
	Revision string
	// Created is every timestamp in the image: SOURCE_DATE_EPOCH or the commit time, never "now", so two
	// builds of one commit are identical.
	Created time.Time
	// License is the text installed as /licenses/LICENSE.
	License []byte
	// Binaries maps each platform ("linux/amd64") to a static certrollout built for it; the image has one
	// manifest per entry.
	Binaries map[string]string
}

// tagPattern is the distribution spec's rule for a tag.
var tagPattern = regexp.MustCompile(`^[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}$`)

// Validate says what is missing or malformed.
func (o Options) Validate() error {
	var errs []error
	if !tagPattern.MatchString(o.Version) {
		errs = append(errs, fmt.Errorf("version %q is not a valid image tag ([A-Za-z0-9_][A-Za-z0-9._-]{0,127})", o.Version))
	}
	if o.Revision == "" {
		errs = append(errs, errors.New("revision is empty"))
	}
	if o.Created.IsZero() {
		errs = append(errs, errors.New("created time is zero (pass SOURCE_DATE_EPOCH or the commit time)"))
	}
	if len(o.License) == 0 {
		errs = append(errs, errors.New("license text is empty"))
	}
	if len(o.Binaries) == 0 {
		errs = append(errs, errors.New("no binaries: nothing to build an image of"))
	}
	for p := range o.Binaries {
		if _, err := v1.ParsePlatform(p); err != nil {
			errs = append(errs, fmt.Errorf("platform %q: %w", p, err))
		}
	}
	return errors.Join(errs...)
}

// Ref is the name an archive of this version loads as, e.g. ghcr.io/certrollout/certrollout:v0.1.0.
func (o Options) Ref() string { return Repository + ":" + o.Version }

// annotations are the OCI annotations of the index and each manifest, and the labels of each config.
func (o Options) annotations() map[string]string {
	return map[string]string{
		AnnotationVersion:     o.Version,
		AnnotationRevision:    o.Revision,
		AnnotationSource:      SourceURL,
		AnnotationURL:         SourceURL,
		AnnotationLicenses:    Licenses,
		AnnotationTitle:       Title,
		AnnotationDescription: Description,
		AnnotationCreated:     o.Created.UTC().Format(time.RFC3339),
	}
}

// Build assembles the multi-platform OCI index. Nothing is written: the layers are held in memory
// (compressed) until WriteLayout stores them.
func Build(o Options) (v1.ImageIndex, error) {
	if err := o.Validate(); err != nil {
		return nil, fmt.Errorf("image options: %w", err)
	}
	platforms := make([]string, 0, len(o.Binaries))
	for p := range o.Binaries {
		platforms = append(platforms, p)
	}
	slices.Sort(platforms) // the index lists platforms in one order whatever the map's

	idx := mutate.IndexMediaType(empty.Index, types.OCIImageIndex)
	for _, p := range platforms {
		platform, _ := v1.ParsePlatform(p) // checked by Validate
		img, err := buildImage(o, *platform, o.Binaries[p])
		if err != nil {
			return nil, fmt.Errorf("image for %s: %w", p, err)
		}
		idx = mutate.AppendManifests(idx, mutate.IndexAddendum{
			Add:        img,
			Descriptor: v1.Descriptor{Platform: platform},
		})
	}
	annotated, ok := mutate.Annotations(idx, o.annotations()).(v1.ImageIndex)
	if !ok {
		return nil, errors.New("annotating the index did not return an index")
	}
	return annotated, nil
}

// buildImage is one platform's image: the layer, a config naming how to run it, OCI media types.
func buildImage(o Options, platform v1.Platform, binary string) (v1.Image, error) {
	layer, err := rootLayer(binary, o.License, o.Created)
	if err != nil {
		return nil, err
	}
	created := v1.Time{Time: o.Created.UTC()}
	cfg := &v1.ConfigFile{
		Architecture: platform.Architecture,
		OS:           platform.OS,
		Variant:      platform.Variant,
		Created:      created,
		Config: v1.Config{
			User:       User,
			Entrypoint: []string{BinaryPath},
			Cmd:        []string{"controller"},
			WorkingDir: "/",
			// The binary is the only program, at the root; PATH lets `kubectl exec ... -- certrollout` find it.
			Env:    []string{"PATH=/"},
			Labels: o.annotations(),
		},
		RootFS: v1.RootFS{Type: "layers"},
	}
	img := mutate.MediaType(empty.Image, types.OCIManifestSchema1)
	img = mutate.ConfigMediaType(img, types.OCIConfigJSON)
	img, err = mutate.ConfigFile(img, cfg)
	if err != nil {
		return nil, err
	}
	img, err = mutate.Append(img, mutate.Addendum{
		Layer:     layer,
		MediaType: types.OCILayer,
		History: v1.History{
			Created:   created,
			CreatedBy: "certrollout hack/release (go-containerregistry, no container engine)",
			Comment:   "certrollout " + o.Version + " for " + platform.String(),
		},
	})
	if err != nil {
		return nil, err
	}
	annotated, ok := mutate.Annotations(img, o.annotations()).(v1.Image)
	if !ok {
		return nil, errors.New("annotating the image did not return an image")
	}
	return annotated, nil
}

// Digests are what a build produced: the index and each platform's manifest.
type Digests struct {
	Index     v1.Hash
	Platforms map[string]v1.Hash
}

// DigestsOf reads the digests of an index built by Build.
func DigestsOf(idx v1.ImageIndex) (Digests, error) {
	d := Digests{Platforms: map[string]v1.Hash{}}
	var err error
	if d.Index, err = idx.Digest(); err != nil {
		return Digests{}, err
	}
	m, err := idx.IndexManifest()
	if err != nil {
		return Digests{}, err
	}
	for _, desc := range m.Manifests {
		if desc.Platform == nil {
			return Digests{}, fmt.Errorf("manifest %s names no platform", desc.Digest)
		}
		d.Platforms[desc.Platform.String()] = desc.Digest
	}
	return d, nil
}
