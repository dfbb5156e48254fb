package slmcopilot_test

// The marketplace's certification library (OpenNebula/marketplace-community,
// lib/community/app_handler.rb at master fa6fbbd) loads metadata.yaml with Ruby's Psych 4
// and indexes the result with Symbols. These tests load metadata.yaml the same way and apply
// the same reads, so a file the library would crash on, or silently misread, fails here; our
// stand-in for the library (testdata/certlib/app_handler.rb) shows what it does with each.

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.yaml.in/yaml/v3"
)

// sym is a Ruby Symbol key (`:name:` in YAML); a plain string key stays a Go string.
type sym string

// Psych's ScalarScanner booleans (YAML 1.1).
var (
	psychTrue  = regexp.MustCompile(`(?i)^(yes|true|on)$`)
	psychFalse = regexp.MustCompile(`(?i)^(no|false|off)$`)
)

// psychLoad converts a YAML node as Psych 4's YAML.load_file does (app_handler.rb:9): plain
// scalars starting with ':' become Symbols, yes/no/on/off are booleans (YAML 1.1), aliases are
// refused (Psych 4 loads with aliases: false).
func psychLoad(n *yaml.Node) (any, error) {
	switch n.Kind {
	case yaml.DocumentNode:
		if len(n.Content) == 0 {
			return nil, nil
		}
		return psychLoad(n.Content[0])
	case yaml.AliasNode:
		return nil, fmt.Errorf("line %d: alias *%s: Psych 4 raises BadAlias", n.Line, n.Value)
	case yaml.SequenceNode:
		out := make([]any, 0, len(n.Content))
		for _, c := range n.Content {
			v, err := psychLoad(c)
			if err != nil {
				return nil, err
			}
			out = append(out, v)
		}
		return out, nil
	case yaml.MappingNode:
		out := map[any]any{}
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, err := psychLoad(n.Content[i])
			if err != nil {
				return nil, err
			}
			v, err := psychLoad(n.Content[i+1])
			if err != nil {
				return nil, err
			}
			out[k] = v
		}
		return out, nil
	}
	plain := n.Style&(yaml.SingleQuotedStyle|yaml.DoubleQuotedStyle|yaml.LiteralStyle|yaml.FoldedStyle) == 0
	if plain {
		switch v := n.Value; {
		case len(v) > 1 && v[0] == ':':
			return sym(v[1:]), nil
		case psychTrue.MatchString(v):
			return true, nil
		case psychFalse.MatchString(v):
			return false, nil
		}
	}
	switch n.ShortTag() {
	case "!!null":
		return nil, nil
	case "!!bool":
		return n.Value == "true", nil
	case "!!int", "!!float":
		return rubyNumber(n.Value), nil
	}
	return n.Value, nil
}

// rubyNumber stands for an Integer or Float: not a String, which is what the rules care about.
type rubyNumber string

// lib is metadata.yaml as the library sees it, with Ruby's Hash#[] (nil when absent or when
// the receiver is nil: the rules report the NoMethodError Ruby would raise).
type lib struct{ root any }

// dig follows config[k1][k2]...; it fails where Ruby would raise NoMethodError on nil.
func (l lib) dig(keys ...any) (any, error) {
	cur := l.root
	path := "config"
	for _, k := range keys {
		h, ok := cur.(map[any]any)
		if !ok {
			return nil, fmt.Errorf("%s is %s, not a Hash: undefined method `[]' (NoMethodError)", path, rubyInspect(cur))
		}
		cur = h[k]
		path += fmt.Sprintf("[%s]", rubyInspect(k))
	}
	return cur, nil
}

func rubyInspect(v any) string {
	switch v := v.(type) {
	case nil:
		return "nil"
	case sym:
		return ":" + string(v)
	case string:
		return fmt.Sprintf("%q", v)
	case []any:
		return "an Array"
	case map[any]any:
		return "a Hash"
	}
	return fmt.Sprint(v)
}

// certRule is one read the library makes, and what it needs of the value.
type certRule struct {
	at    string // where the library reads it
	check func(l lib) error
}

// needString reads keys and requires a non-empty String (Integer/Array/nil fail as they would
// in the interpolation or method call at that line).
func needString(l lib, keys ...any) (string, error) {
	v, err := l.dig(keys...)
	if err != nil {
		return "", err
	}
	s, ok := v.(string)
	if !ok || s == "" {
		return "", fmt.Errorf("config%s is %s, want a non-empty String", keyPath(keys), rubyInspect(v))
	}
	return s, nil
}

func keyPath(keys []any) string {
	var b strings.Builder
	for _, k := range keys {
		fmt.Fprintf(&b, "[%s]", rubyInspect(k))
	}
	return b.String()
}

// applianceDir is this appliance's directory name, which is also its directory in
// marketplace-community (appliances/<name>/).
const applianceDir = "slm-copilot"

// certRules are app_handler.rb's reads of metadata.yaml (line numbers at master fa6fbbd).
func certRules(declared map[string]string) []certRule {
	return []certRule{
		{"app_handler.rb:11 VM_TEMPLATE = config[:one][:template][:NAME] || 'base'", func(l lib) error {
			tmpl, err := l.dig(sym("one"), sym("template"))
			if err != nil {
				return err
			}
			h, ok := tmpl.(map[any]any)
			if !ok {
				return fmt.Errorf("config[:one][:template] is %s: [:NAME] raises NoMethodError", rubyInspect(tmpl))
			}
			if _, plain := h["NAME"]; plain {
				return errors.New(`the template has a String key "NAME", which [:NAME] does not read: the library would use 'base'`)
			}
			_, err = needString(l, sym("one"), sym("template"), sym("NAME"))
			return err
		}},
		{"app_handler.rb:12 IMAGE_DATASTORE = config[:one][:datastore] || 'default'", func(l lib) error {
			ds, err := l.dig(sym("one"), sym("datastore"))
			if err != nil {
				return err
			}
			if name, _ := l.dig(sym("one"), sym("datastore_name")); name != nil && name != ds {
				return fmt.Errorf("config[:one][:datastore_name] = %s is not read; the library uses [:datastore] = %s", rubyInspect(name), rubyInspect(ds))
			}
			_, err = needString(l, sym("one"), sym("datastore"))
			return err
		}},
		{"app_handler.rb:15,82 config[:infra][:disk_format] names the image file", func(l lib) error {
			f, err := needString(l, sym("infra"), sym("disk_format"))
			if err == nil && f != "qcow2" {
				err = fmt.Errorf("disk_format %q: the build exports qcow2", f)
			}
			return err
		}},
		{"app_handler.rb:17,91-94 config[:app][:name]: the image name and appliances/<name>/context.yaml", func(l lib) error {
			name, err := needString(l, sym("app"), sym("name"))
			if err != nil {
				return err
			}
			if short := name[strings.LastIndex(name, "_")+1:]; short != applianceDir {
				return fmt.Errorf("name %q: the library writes context.yaml into appliances/%s/, not appliances/%s/", name, short, applianceDir)
			}
			return nil
		}},
		{"app_handler.rb:18,35,58-67 context params, prefixed with ONEAPP_ when :prefixed is true", func(l lib) error {
			prefixed, err := l.dig(sym("app"), sym("context"), sym("prefixed"))
			if err != nil {
				return err
			}
			if _, ok := prefixed.(bool); !ok {
				return fmt.Errorf("[:prefixed] is %s: only the boolean true makes the library prefix ONEAPP_ (`prefixed == true`)", rubyInspect(prefixed))
			}
			params, err := l.dig(sym("app"), sym("context"), sym("params"))
			if err != nil {
				return err
			}
			h, ok := params.(map[any]any)
			if !ok {
				return fmt.Errorf("[:params] is %s: .each needs a Hash", rubyInspect(params))
			}
			var errs []error
			for k, v := range h {
				name := fmt.Sprint(k) // "#{key}": a Symbol interpolates without its colon
				if prefixed == true {
					name = "ONEAPP_" + name
				}
				if _, ok := declared[name]; !ok {
					errs = append(errs, fmt.Errorf("key %s reaches the VM as %s, which appliance.sh does not declare", rubyInspect(k), name))
				}
				// The value lands inside --context "...,KEY=\"value\"" on a shell command line.
				if s, isStr := v.(string); v != nil && (!isStr || strings.ContainsAny(s, "\"\\$`,")) {
					errs = append(errs, fmt.Errorf("key %s: value %s must be a String without \" \\ $ ` or , (it is quoted into the onetemplate command line)", rubyInspect(k), rubyInspect(v)))
				}
			}
			return errors.Join(errs...)
		}},
		{"app_handler.rb:20 ENV['ONE_XMLRPC_TIMEOUT'] = config[:one][:timeout] || '90'", func(l lib) error {
			v, err := l.dig(sym("one"), sym("timeout"))
			if err != nil || v == nil {
				return err
			}
			if _, ok := v.(string); !ok {
				return fmt.Errorf("[:timeout] is %s: ENV[]= raises TypeError unless it is a String (quote it)", rubyInspect(v))
			}
			return nil
		}},
		{"app_handler.rb:83 config[:app][:os][:type]", func(l lib) error {
			_, err := needString(l, sym("app"), sym("os"), sym("type"))
			return err
		}},
		{"app_handler.rb:84 config[:app][:hypervisor].downcase (microenv context-kvm)", func(l lib) error {
			h, err := needString(l, sym("app"), sym("hypervisor"))
			if err == nil && strings.ToLower(h) != "kvm" {
				err = fmt.Errorf("hypervisor %q: the image is built for KVM", h)
			}
			return err
		}},
		{".github/workflows/state_machine.yml: yq '.[\":app\"][\":os\"][\":base\"]'", func(l lib) error {
			_, err := needString(l, sym("app"), sym("os"), sym("base"))
			return err
		}},
	}
}

// certProblems loads metadata YAML as the library does and returns every rule it breaks.
func certProblems(src []byte, declared map[string]string) []string {
	var doc yaml.Node
	if err := yaml.Unmarshal(src, &doc); err != nil {
		return []string{"app_handler.rb:9 YAML.load_file: " + err.Error()}
	}
	root, err := psychLoad(&doc)
	if err != nil {
		return []string{"app_handler.rb:9 YAML.load_file: " + err.Error()}
	}
	var out []string
	for _, r := range certRules(declared) {
		if err := r.check(lib{root}); err != nil {
			for _, line := range strings.Split(err.Error(), "\n") {
				out = append(out, r.at+": "+line)
			}
		}
	}
	sort.Strings(out)
	return out
}

func TestMetadataLoadsInCertificationLibrary(t *testing.T) {
	t.Parallel()
	declared := applianceParams(t)
	assert.Empty(t, certProblems([]byte(readFile(t, "metadata.yaml")), declared))
}

// brokenMetadata are metadata.yaml files the library crashes on or misreads: the v1 file
// (which the library crashed on) and one-line breakages of today's. want are substrings of the
// rules' problems. What the library does with each is either raises, the Ruby exception it
// raises on upstream line at, or frontend, a front-end command it issues instead of the right
// one; TestCertificationLibraryOnBrokenMetadata runs our stand-in to show it.
var brokenMetadata = []struct {
	name, old, new string
	want           []string
	raises, at     string
	frontend       string
}{
	{name: "v1 file", want: []string{"[:template] is nil", "hypervisor] is an Array", "ONEAPP_ONEAPP_COPILOT_PASSWORD"},
		raises: "NoMethodError", at: "app_handler.rb:11"},
	{name: "hypervisor list", old: ":hypervisor: KVM", new: ":hypervisor: [KVM]", want: []string{"is an Array"},
		raises: "NoMethodError", at: "app_handler.rb:84"},
	{name: "no template", old: "  :template:\n    :NAME: slm-copilot\n", new: "  :template_doc:\n    :NAME: slm-copilot\n", want: []string{"[:template] is nil"},
		raises: "NoMethodError", at: "app_handler.rb:11"},
	{name: "template NAME as string", old: ":NAME: slm-copilot", new: "NAME: slm-copilot", want: []string{`String key "NAME"`},
		frontend: "onetemplate instantiate base --context"},
	{name: "double prefix", old: ":COPILOT_THREADS:", new: ":ONEAPP_COPILOT_THREADS:", want: []string{"ONEAPP_ONEAPP_COPILOT_THREADS"},
		frontend: `,ONEAPP_ONEAPP_COPILOT_THREADS=\"0\",`},
	{name: "prefixed as string", old: ":prefixed: true", new: ":prefixed: 'true'", want: []string{"only the boolean true"},
		frontend: `,COPILOT_THREADS=\"0\",`},
	{name: "unknown variable", old: ":COPILOT_THREADS:", new: ":COPILOT_THREAD:", want: []string{"ONEAPP_COPILOT_THREAD,"},
		frontend: `,ONEAPP_COPILOT_THREAD=\"0\",`},
	{name: "value with a quote", old: ":COPILOT_THREADS: '0'", new: `:COPILOT_THREADS: '0"'`, want: []string{"must be a String without"},
		frontend: `,ONEAPP_COPILOT_THREADS=\"0"\",`},
	{name: "integer timeout", old: ":timeout: '120'", new: ":timeout: 120", want: []string{"raises TypeError"},
		raises: "TypeError", at: "app_handler.rb:20"},
	{name: "yes is a boolean", old: ":disk_format: qcow2", new: ":disk_format: yes", want: []string{"[:disk_format] is true"},
		frontend: "--path http://images.test/slm-copilot.true\n"},
	{name: "name with another directory", old: ":name: slm-copilot", new: ":name: service_copilot", want: []string{"appliances/copilot/"},
		raises: "Errno::ENOENT", at: "app_handler.rb:94"},
	// The library falls back to 'default', which is also what the file meant: nothing to see.
	{name: "datastore_name only", old: ":datastore: default  #", new: ":datastore_x: default  #", want: []string{"is not read"}},
	{name: "alias", old: ":COPILOT_DOMAIN: ''", new: ":COPILOT_DOMAIN: &d ''\n      :COPILOT_TLS_KEY2: *d", want: []string{"BadAlias"},
		raises: "Psych::BadAlias", at: "app_handler.rb:9"},
}

// brokenMetadataText is the metadata.yaml of a brokenMetadata case.
func brokenMetadataText(t *testing.T, old, new string) string {
	t.Helper()
	if old == "" {
		return readFile(t, filepath.Join("testdata", "metadata-v1.yaml"))
	}
	good := readFile(t, "metadata.yaml")
	require.Contains(t, good, old)
	return strings.Replace(good, old, new, 1)
}

// TestCertRulesRejectBrokenMetadata proves each rule fails on the metadata it is about.
func TestCertRulesRejectBrokenMetadata(t *testing.T) {
	t.Parallel()
	declared := applianceParams(t)
	for _, tc := range brokenMetadata {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			problems := strings.Join(certProblems([]byte(brokenMetadataText(t, tc.old, tc.new)), declared), "\n")
			for _, w := range tc.want {
				assert.Contains(t, problems, w)
			}
		})
	}
}

// TestTestsYAMLListsSpecs: app_readiness.rb:23,37-39 runs rspec on tests/<entry> for each
// entry of tests.yaml; each spec must load the library from the upstream layout and use its
// VM handler (app_handler.rb:22).
func TestTestsYAMLListsSpecs(t *testing.T) {
	t.Parallel()
	var entries []string
	require.NoError(t, yaml.Unmarshal([]byte(readFile(t, "tests.yaml")), &entries))
	require.NotEmpty(t, entries)
	for _, e := range entries {
		spec := readFile(t, filepath.Join("tests", e))
		assert.Contains(t, spec, "require_relative '../../../lib/community/app_handler'", e)
		assert.Contains(t, spec, "include_context('vm_handler')", e)
	}
	files, err := os.ReadDir("tests")
	require.NoError(t, err)
	for _, f := range files {
		assert.Contains(t, entries, f.Name(), "tests/%s is not listed in tests.yaml, so the marketplace never runs it", f.Name())
	}
}
