package image

import (
	"bytes"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// Release is what a build publishes beside the image's own numbers.
type Release struct {
	URL            string // where the image is downloaded from
	Version        string // the appliance's MAJOR.MINOR.PATCH
	OneAppsVersion string // the one-apps release the image contains, e.g. 6.10.0-3
}

// MarketplaceVersion is the marketplace `version` of a build: the appliance version and the
// build's UTC minute, so every build publishes a newer version than the last.
func MarketplaceVersion(appliance string, created time.Time) string {
	return appliance + "-" + created.UTC().Format("200601021504")
}

// UpdateMarketplace writes the image's virtual size, checksums, download URL, creation time,
// marketplace version and one-apps version into the marketplace YAML at path. Only those
// values' lines change: comments, order and formatting of everything else stay byte for byte.
func UpdateMarketplace(path string, m Manifest, r Release) error {
	src, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("update marketplace YAML: %w", err)
	}
	var doc yaml.Node
	if err := yaml.Unmarshal(src, &doc); err != nil {
		return fmt.Errorf("update marketplace YAML %s: %w", path, err)
	}
	if len(doc.Content) == 0 {
		return fmt.Errorf("update marketplace YAML %s: empty document", path)
	}
	root := doc.Content[0]
	img := mapValue(mapValue(root, "images"), "")
	if img == nil {
		return fmt.Errorf("update marketplace YAML %s: %w", path, ErrNoImage)
	}
	sums := mapValue(img, "checksum")
	edits := []struct {
		node  *yaml.Node
		value string
		what  string
	}{
		{mapValue(root, "version"), MarketplaceVersion(r.Version, m.Created), "version"},
		{mapValue(root, "one-apps_version"), r.OneAppsVersion, "one-apps_version"},
		{mapValue(root, "creation_time"), strconv.FormatInt(m.Created.Unix(), 10), "creation_time"},
		{mapValue(img, "url"), r.URL, "images[0].url"},
		{mapValue(img, "size"), strconv.FormatInt(m.VirtualSize, 10), "images[0].size"},
		{mapValue(sums, "md5"), quote(m.Checksums.MD5), "images[0].checksum.md5"},
		{mapValue(sums, "sha256"), quote(m.Checksums.SHA256), "images[0].checksum.sha256"},
	}
	lines := strings.SplitAfter(string(src), "\n")
	for _, e := range edits {
		if e.node == nil || e.node.Kind != yaml.ScalarNode {
			return fmt.Errorf("update marketplace YAML %s: no scalar %s", path, e.what)
		}
		if e.value == "" {
			return fmt.Errorf("update marketplace YAML %s: no value for %s", path, e.what)
		}
		i := e.node.Line - 1
		prefix := lines[i][:e.node.Column-1]
		lines[i] = prefix + e.value + lineEnd(lines[i])
	}
	out := []byte(strings.Join(lines, ""))
	var check yaml.Node
	if err := yaml.Unmarshal(out, &check); err != nil {
		return fmt.Errorf("update marketplace YAML %s: the edit broke the YAML: %w", path, err)
	}
	if bytes.Equal(out, src) {
		return nil
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, out, 0o644); err != nil {
		return fmt.Errorf("update marketplace YAML: %w", err)
	}
	return os.Rename(tmp, path)
}

// mapValue returns the value of key in a mapping node, or, with an empty key, the first item
// of a sequence node; nil when absent.
func mapValue(n *yaml.Node, key string) *yaml.Node {
	if n == nil {
		return nil
	}
	if key == "" {
		if n.Kind == yaml.SequenceNode && len(n.Content) > 0 {
			return n.Content[0]
		}
		return nil
	}
	if n.Kind != yaml.MappingNode {
		return nil
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		if n.Content[i].Value == key {
			return n.Content[i+1]
		}
	}
	return nil
}

func quote(s string) string { return "'" + s + "'" }

// lineEnd keeps a trailing comment (with the spaces before it) and the newline of a
// replaced line: for the simple scalars edited here, a comment starts at " #".
func lineEnd(line string) string {
	body := strings.TrimRight(line, "\n")
	nl := line[len(body):]
	i := strings.Index(body, " #")
	if i < 0 {
		return nl
	}
	for i > 0 && body[i-1] == ' ' {
		i--
	}
	return body[i:] + nl
}
