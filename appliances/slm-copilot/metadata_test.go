package slmcopilot_test

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.yaml.in/yaml/v3"
)

// marketplaceFile is the appliance's marketplace-community YAML (<uuid>.yaml).
func marketplaceFile(t *testing.T) string {
	t.Helper()
	files, err := filepath.Glob("*-*-*-*-*.yaml")
	require.NoError(t, err)
	require.Len(t, files, 1, "want exactly one <uuid>.yaml marketplace file")
	require.Regexp(t, `^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\.yaml$`, files[0])
	return files[0]
}

func TestMarketplaceYAMLPassesYamllint(t *testing.T) {
	t.Parallel()
	for _, f := range []string{marketplaceFile(t), "metadata.yaml"} {
		out, err := exec.Command("yamllint", "-d", "{extends: default, rules: {line-length: disable}}", f).CombinedOutput()
		assert.NoError(t, err, "yamllint %s:\n%s", f, out)
	}
}

// marketplace is the part of the marketplace format the checks read.
type marketplace struct {
	Name             string   `yaml:"name"`
	Version          string   `yaml:"version"`
	OneAppsVersion   string   `yaml:"one-apps_version"`
	Publisher        string   `yaml:"publisher"`
	PublisherEmail   string   `yaml:"publisher_email"`
	Description      string   `yaml:"description"`
	ShortDescription string   `yaml:"short_description"`
	Tags             []string `yaml:"tags"`
	Format           string   `yaml:"format"`
	CreationTime     int64    `yaml:"creation_time"`
	OSID             string   `yaml:"os-id"`
	OSRelease        string   `yaml:"os-release"`
	OSArch           string   `yaml:"os-arch"`
	Hypervisor       string   `yaml:"hypervisor"`
	OpenNebula       string   `yaml:"opennebula_version"`
	Logo             string   `yaml:"logo"`
	Template         struct {
		Context     map[string]string `yaml:"context"`
		CPUModel    map[string]string `yaml:"cpu_model"`
		InputsOrder string            `yaml:"inputs_order"`
		UserInputs  map[string]string `yaml:"user_inputs"`
		Memory      string            `yaml:"memory"`
		VCPU        string            `yaml:"vcpu"`
	} `yaml:"opennebula_template"`
	Images []struct {
		Name      string            `yaml:"name"`
		URL       string            `yaml:"url"`
		Type      string            `yaml:"type"`
		DevPrefix string            `yaml:"dev_prefix"`
		Driver    string            `yaml:"driver"`
		Size      int64             `yaml:"size"`
		Checksum  map[string]string `yaml:"checksum"`
	} `yaml:"images"`
}

func readMarketplace(t *testing.T) marketplace {
	t.Helper()
	var m marketplace
	require.NoError(t, yaml.Unmarshal([]byte(readFile(t, marketplaceFile(t))), &m))
	return m
}

func TestMarketplaceYAMLStructure(t *testing.T) {
	t.Parallel()
	m := readMarketplace(t)
	for field, value := range map[string]string{
		"name": m.Name, "version": m.Version, "one-apps_version": m.OneAppsVersion, "publisher": m.Publisher,
		"publisher_email": m.PublisherEmail, "description": m.Description, "short_description": m.ShortDescription,
		"os-id": m.OSID, "os-release": m.OSRelease, "os-arch": m.OSArch, "opennebula_version": m.OpenNebula, "logo": m.Logo,
	} {
		assert.NotEmpty(t, value, "marketplace field %s", field)
	}
	assert.NotEmpty(t, m.Tags)
	assert.Equal(t, "qcow2", m.Format)
	assert.Equal(t, "KVM", m.Hypervisor)
	assert.Positive(t, m.CreationTime)
	assert.Equal(t, "host-passthrough", m.Template.CPUModel["model"], "the backend needs the host's CPU flags")
	for _, k := range []string{"network", "token", "report_ready"} {
		assert.Equal(t, "YES", m.Template.Context[k], "context %s", k)
	}
	require.Len(t, m.Images, 1)
	img := m.Images[0]
	assert.NotEmpty(t, img.Name)
	assert.NotEmpty(t, img.URL)
	assert.Equal(t, "OS", img.Type)
	assert.Equal(t, "vd", img.DevPrefix)
	assert.Equal(t, "qcow2", img.Driver)
	assert.Positive(t, img.Size, "size is the image's virtual size in bytes")
	require.Contains(t, img.Checksum, "md5")
	require.Contains(t, img.Checksum, "sha256")
	// Empty until the build suite fills them.
	assert.Regexp(t, `^([0-9a-f]{32})?$`, img.Checksum["md5"])
	assert.Regexp(t, `^([0-9a-f]{64})?$`, img.Checksum["sha256"])
}

// applianceParams are the context variables appliance.sh declares, with their defaults.
func applianceParams(t *testing.T) map[string]string {
	t.Helper()
	script := `source ./appliance.sh
for ((i = 0; i < ${#ONE_SERVICE_PARAMS[@]}; i += 4)); do
  name="${ONE_SERVICE_PARAMS[i]}"
  printf '%s=%s\n' "${name}" "${!name}"
done`
	cmd := exec.Command("bash", "-c", script)
	cmd.Env = []string{"PATH=" + os.Getenv("PATH")} // no ONEAPP_* from the caller
	out, err := cmd.CombinedOutput()
	require.NoError(t, err, "%s", out)
	params := map[string]string{}
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		k, v, _ := strings.Cut(line, "=")
		params[k] = v
	}
	require.NotEmpty(t, params)
	return params
}

func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// TestVariablesAgree: appliance.sh, its help, the marketplace YAML, metadata.yaml and the
// README list the same context variables, with the same defaults.
func TestVariablesAgree(t *testing.T) {
	t.Parallel()
	params := applianceParams(t)
	want := sortedKeys(params)
	m := readMarketplace(t)

	names := func(re string, text string) []string {
		var out []string
		seen := map[string]bool{}
		for _, match := range regexp.MustCompile(re).FindAllStringSubmatch(text, -1) {
			if n := strings.ToUpper(match[1]); !seen[n] {
				seen[n] = true
				out = append(out, n)
			}
		}
		sort.Strings(out)
		return out
	}
	help, err := exec.Command("bash", "-c", "source ./appliance.sh; service_help").CombinedOutput()
	require.NoError(t, err, "%s", help)
	readme := readFile(t, "README.md")
	assert.Equal(t, want, names(`(?m)^\s+(ONEAPP_[A-Z0-9_]+)\s+\[`, string(help)), "service_help")
	assert.Equal(t, want, names("(?m)^\\| `(ONEAPP_[A-Z0-9_]+)`", readme), "README's variable table")
	assert.Equal(t, want, metadataContextNames(t), "metadata.yaml, as app_handler.rb names them")
	assert.Equal(t, want, sortedUpper(m.Template.UserInputs), "marketplace user_inputs")
	var ctx []string
	for k, v := range m.Template.Context {
		if strings.HasPrefix(k, "oneapp_") {
			assert.Equal(t, "$"+strings.ToUpper(k), v, "context %s must pass the user input through", k)
			ctx = append(ctx, strings.ToUpper(k))
		}
	}
	sort.Strings(ctx)
	assert.Equal(t, want, ctx, "marketplace context")
	order := strings.Split(strings.TrimSpace(m.Template.InputsOrder), ",")
	sort.Strings(order)
	assert.Equal(t, want, order, "marketplace inputs_order")

	for name, def := range params {
		spec := m.Template.UserInputs[strings.ToLower(name)]
		fields := strings.Split(spec, "|")
		if assert.Len(t, fields, 5, "user input %s: want 5 fields (M or O|type|label|options|default), got %q", name, spec) {
			assert.Equal(t, def, fields[4], "default of %s in the marketplace YAML", name)
		}
		shownDefault := def
		if shownDefault == "" {
			shownDefault = "empty"
		}
		if name == "ONEAPP_COPILOT_PASSWORD" {
			shownDefault = "generated"
		}
		assert.Regexp(t, `(?m)^\s+`+name+`\s+\[`+regexp.QuoteMeta(shownDefault)+`\]`, string(help), "service_help default of %s", name)
	}
}

func sortedUpper(m map[string]string) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, strings.ToUpper(k))
	}
	sort.Strings(out)
	return out
}

// metadataContextNames are the context variables the certification library gives the VM
// from metadata.yaml (app_handler.rb:58-67: each params key, ONEAPP_-prefixed when :prefixed
// is true).
func metadataContextNames(t *testing.T) []string {
	t.Helper()
	var doc yaml.Node
	require.NoError(t, yaml.Unmarshal([]byte(readFile(t, "metadata.yaml")), &doc))
	root, err := psychLoad(&doc)
	require.NoError(t, err)
	ctx, err := lib{root}.dig(sym("app"), sym("context"))
	require.NoError(t, err)
	h, ok := ctx.(map[any]any)
	require.True(t, ok, "metadata.yaml has no :app: :context: Hash")
	params, ok := h[sym("params")].(map[any]any)
	require.True(t, ok, "metadata.yaml has no :app: :context: :params: Hash")
	var out []string
	for k := range params {
		name := fmt.Sprint(k)
		if h[sym("prefixed")] == true {
			name = "ONEAPP_" + name
		}
		out = append(out, name)
	}
	sort.Strings(out)
	return out
}
