// Package marketplace checks the appliance's marketplace YAML (OpenNebula/marketplace-community
// appliances/<uuid>.yaml) before a release publishes it.
package marketplace

import (
	"fmt"
	"net/url"
	"regexp"
	"sort"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"
)

var (
	markerRe = regexp.MustCompile(`@[A-Za-z0-9_.-]+@`)
	todoRe   = regexp.MustCompile(`\bTODO\b`)
	urlRe    = regexp.MustCompile(`https?://[^\s'"<>)\]]+`)
	md5Re    = regexp.MustCompile(`^[0-9a-f]{32}$`)
	sha256Re = regexp.MustCompile(`^[0-9a-f]{64}$`)
	// Documentation-only hosts (RFC 2606) that the committed YAML uses until a build fills it.
	placeholderHost = regexp.MustCompile(`(?i)(^|\.)example\.(org|com|net)$`)
)

// Placeholders lists every value of a marketplace YAML that a release must not publish: URLs on
// example.org/.com/.net, @...@ markers, TODO, an image without a download URL, a positive
// size or md5/sha256 checksums, and a missing version or creation time. The committed YAML has
// some until the build fills them (helpers/image UpdateMarketplace); a release build refuses to
// publish while this list is not empty.
func Placeholders(yamlBytes []byte) []string {
	var doc yaml.Node
	if err := yaml.Unmarshal(yamlBytes, &doc); err != nil {
		return []string{fmt.Sprintf("not valid YAML: %v", err)}
	}
	if len(doc.Content) == 0 || doc.Content[0].Kind != yaml.MappingNode {
		return []string{"not a YAML mapping"}
	}
	var out []string
	add := func(path, format string, args ...any) {
		out = append(out, path+": "+fmt.Sprintf(format, args...))
	}
	walk(doc.Content[0], "", func(path, value string) {
		for _, m := range markerRe.FindAllString(value, -1) {
			add(path, "marker %s", m)
		}
		if todoRe.MatchString(value) {
			add(path, "TODO")
		}
		for _, raw := range urlRe.FindAllString(value, -1) {
			if u, err := url.Parse(raw); err == nil && placeholderHost.MatchString(u.Hostname()) {
				add(path, "placeholder URL %s", raw)
			}
		}
	})
	root := doc.Content[0]
	for _, key := range []string{"version", "logo"} {
		if v := value(root, key); v == nil || strings.TrimSpace(v.Value) == "" {
			add(key, "empty")
		}
	}
	if v := value(root, "creation_time"); v == nil || !positive(v.Value) {
		add("creation_time", "not filled (want the build's epoch seconds)")
	}
	images := value(root, "images")
	if images == nil || images.Kind != yaml.SequenceNode || len(images.Content) == 0 {
		add("images", "no image")
		return sorted(out)
	}
	for i, img := range images.Content {
		p := fmt.Sprintf("images[%d]", i)
		if u := value(img, "url"); u == nil || !strings.HasPrefix(u.Value, "https://") {
			add(p+".url", "no https download URL")
		}
		if s := value(img, "size"); s == nil || !positive(s.Value) {
			add(p+".size", "not filled (want the virtual size in bytes)")
		}
		sums := value(img, "checksum")
		for _, c := range []struct {
			name string
			re   *regexp.Regexp
		}{{"md5", md5Re}, {"sha256", sha256Re}} {
			if v := value(sums, c.name); v == nil || !c.re.MatchString(v.Value) {
				add(p+".checksum."+c.name, "not filled (want lowercase hex)")
			}
		}
	}
	return sorted(out)
}

// walk calls fn with each scalar value and its path (a.b[0].c).
func walk(n *yaml.Node, path string, fn func(path, value string)) {
	switch n.Kind {
	case yaml.MappingNode:
		for i := 0; i+1 < len(n.Content); i += 2 {
			p := n.Content[i].Value
			if path != "" {
				p = path + "." + p
			}
			walk(n.Content[i+1], p, fn)
		}
	case yaml.SequenceNode:
		for i, c := range n.Content {
			walk(c, fmt.Sprintf("%s[%d]", path, i), fn)
		}
	case yaml.ScalarNode:
		fn(path, n.Value)
	}
}

// value is the value node of key in mapping n, or nil.
func value(n *yaml.Node, key string) *yaml.Node {
	if n == nil || n.Kind != yaml.MappingNode {
		return nil
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		if n.Content[i].Value == key {
			return n.Content[i+1]
		}
	}
	return nil
}

func positive(s string) bool {
	n, err := strconv.ParseInt(s, 10, 64)
	return err == nil && n > 0
}

func sorted(s []string) []string {
	sort.Strings(s)
	return s
}
