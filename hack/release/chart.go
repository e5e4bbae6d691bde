package main

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"slices"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
	"helm.sh/helm/v4/pkg/chart/common"
	chart "helm.sh/helm/v4/pkg/chart/v2"
	"helm.sh/helm/v4/pkg/chart/v2/loader"
	chartutil "helm.sh/helm/v4/pkg/chart/v2/util"
)

// packageChart packages the chart in dir into outDir as Helm does (`helm package`), with the chart's
// version set to version without its v (Helm's chart versions are plain semver), appVersion to version as
// it is (v0.1.0, the image tag, as in the chart's folder), the image tag in values.yaml set to version, and
// every file's time set to date so the .tgz is reproducible. It returns the archive's path.
func packageChart(dir, outDir, version string, date time.Time) (string, error) {
	if _, err := os.Stat(dir); errors.Is(err, fs.ErrNotExist) {
		return "", fmt.Errorf("the Helm chart %s does not exist, and a release packages it: add the chart, or pass -chart", dir)
	}
	c, err := loader.LoadDir(dir)
	if err != nil {
		return "", fmt.Errorf("loading the Helm chart %s: %w", dir, err)
	}
	semver := strings.TrimPrefix(version, "v")
	c.Metadata.Version = semver
	c.Metadata.AppVersion = version

	i := slices.IndexFunc(c.Raw, func(f *common.File) bool { return f.Name == chartutil.ValuesfileName })
	if i < 0 {
		return "", fmt.Errorf("the Helm chart %s has no values.yaml to set image.tag in", dir)
	}
	values, err := setImageTag(c.Raw[i].Data, version)
	if err != nil {
		return "", fmt.Errorf("%s/values.yaml: %w", dir, err)
	}
	c.Raw[i].Data = values
	if c.Values, err = loader.LoadValues(bytes.NewReader(values)); err != nil {
		return "", fmt.Errorf("%s/values.yaml after setting image.tag: %w", dir, err)
	}

	sortDependencies(c) // the loader adds subcharts in map order; Save writes them in that order
	c.StampModTimes(date)
	path, err := chartutil.Save(c, outDir)
	if err != nil {
		return "", fmt.Errorf("packaging the Helm chart %s: %w", dir, err)
	}
	return path, nil
}

func sortDependencies(c *chart.Chart) {
	deps := slices.Clone(c.Dependencies())
	slices.SortFunc(deps, func(a, b *chart.Chart) int { return strings.Compare(a.Name(), b.Name()) })
	c.SetDependencies(deps...)
	for _, d := range deps {
		sortDependencies(d)
	}
}

// setImageTag returns values with image.tag set to tag, editing only that value's text so comments,
// order and layout stay as the chart's author wrote them. A missing tag: is added under image:.
func setImageTag(values []byte, tag string) ([]byte, error) {
	var doc yaml.Node
	if err := yaml.Unmarshal(values, &doc); err != nil {
		return nil, err
	}
	if len(doc.Content) != 1 || doc.Content[0].Kind != yaml.MappingNode {
		return nil, errors.New("is not a mapping")
	}
	imageKey, image := lookup(doc.Content[0], "image")
	if image == nil {
		return nil, errors.New("has no image: section")
	}
	if image.Kind != yaml.MappingNode || image.Style&yaml.FlowStyle != 0 || len(image.Content) == 0 {
		return nil, errors.New("image: is not a block mapping (image:\\n  repository: ...\\n  tag: ...)")
	}
	lines := strings.SplitAfter(string(values), "\n")
	quoted := `"` + tag + `"` // a checked semantic version needs no escaping
	tagKey, value := lookup(image, "tag")
	switch {
	case tagKey == nil:
		indent := strings.Repeat(" ", image.Content[0].Column-1)
		lines = slices.Insert(lines, imageKey.Line, indent+"tag: "+quoted+"\n")
	case value.Kind != yaml.ScalarNode || value.Style&(yaml.LiteralStyle|yaml.FoldedStyle) != 0:
		return nil, errors.New("image.tag is not a one-line scalar")
	case value.Tag == "!!null" && value.Value == "":
		// "tag:" and nothing after: write the value after the key.
		line := lines[tagKey.Line-1]
		colon := strings.Index(line[tagKey.Column-1:], ":") + tagKey.Column
		lines[tagKey.Line-1] = line[:colon] + " " + quoted + line[colon:]
	default:
		line := lines[value.Line-1]
		start := value.Column - 1
		end, err := scalarEnd(line, start, value.Style)
		if err != nil {
			return nil, err
		}
		lines[value.Line-1] = line[:start] + quoted + line[end:]
	}
	out := []byte(strings.Join(lines, ""))

	// The edit must mean what it says: parse again and read the tag back.
	var check struct {
		Image struct {
			Tag string `yaml:"tag"`
		} `yaml:"image"`
	}
	if err := yaml.Unmarshal(out, &check); err != nil {
		return nil, fmt.Errorf("setting image.tag broke the file: %w", err)
	}
	if check.Image.Tag != tag {
		return nil, fmt.Errorf("setting image.tag failed: it reads back as %q", check.Image.Tag)
	}
	return out, nil
}

// lookup returns the key and value nodes of key in a mapping node.
func lookup(m *yaml.Node, key string) (*yaml.Node, *yaml.Node) {
	for i := 0; i+1 < len(m.Content); i += 2 {
		if m.Content[i].Value == key {
			return m.Content[i], m.Content[i+1]
		}
	}
	return nil, nil
}

// scalarEnd is the index just past the one-line scalar that starts at start in line.
func scalarEnd(line string, start int, style yaml.Style) (int, error) {
	switch {
	case style&yaml.DoubleQuotedStyle != 0:
		for i := start + 1; i < len(line); i++ {
			switch line[i] {
			case '\\':
				i++
			case '"':
				return i + 1, nil
			}
		}
	case style&yaml.SingleQuotedStyle != 0:
		for i := start + 1; i < len(line); i++ {
			if line[i] == '\'' {
				if i+1 < len(line) && line[i+1] == '\'' {
					i++
					continue
				}
				return i + 1, nil
			}
		}
	default: // plain: up to a comment or the end of the line
		end := len(strings.TrimRight(line, "\r\n"))
		if c := strings.Index(line[start:], " #"); c >= 0 {
			end = start + c
		}
		return len(strings.TrimRight(line[:end], " \t")), nil
	}
	return 0, errors.New("image.tag's quoted value does not end on its line")
}
