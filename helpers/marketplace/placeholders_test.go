package marketplace_test

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/slm-copilot/slm-copilot/helpers/marketplace"
)

// committed is the appliance's marketplace YAML as committed (placeholders included).
func committed(t *testing.T) string {
	t.Helper()
	files, err := filepath.Glob("../../appliances/slm-copilot/*-*-*-*-*.yaml")
	require.NoError(t, err)
	require.Len(t, files, 1)
	b, err := os.ReadFile(files[0])
	require.NoError(t, err)
	return string(b)
}

// filled is the committed YAML with what a release build writes into it.
func filled(t *testing.T) string {
	t.Helper()
	s := committed(t)
	for re, v := range map[string]string{
		`(?m)^(    url: ).*$`:      "${1}https://downloads.slm-copilot.org/slm-copilot-1.1.0.qcow2",
		`(?m)^(      md5: ).*$`:    "${1}'9e107d9d372bb6826bd81d3542a419d6'",
		`(?m)^(      sha256: ).*$`: "${1}'d7a8fbb307d7809469ca9abcb0082e4f8d5651e46d3cdb762d02d0bf37c9e592'",
	} {
		r := regexp.MustCompile(re)
		require.Regexp(t, r, s)
		s = r.ReplaceAllString(s, v)
	}
	return s
}

func TestCommittedYAMLHasItsPlaceholdersListed(t *testing.T) {
	t.Parallel()
	var paths []string
	for _, p := range marketplace.Placeholders([]byte(committed(t))) {
		paths = append(paths, p[:strings.Index(p, ": ")])
	}
	// Exactly what the build fills: any other placeholder would only surface at release time.
	assert.Equal(t, []string{"images[0].checksum.md5", "images[0].checksum.sha256", "images[0].url"}, paths)
}

func TestFilledYAMLHasNoPlaceholder(t *testing.T) {
	t.Parallel()
	assert.Empty(t, marketplace.Placeholders([]byte(filled(t))))
}

func TestPlaceholdersFound(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, re, repl, want string
	}{
		{"marker", `(?m)^version: .*$`, "version: '@VERSION@'", "version: marker @VERSION@"},
		{"TODO in the description", `(?m)^description: \|-\n`, "description: |-\n  TODO: write this.\n", "description: TODO"},
		{"example.com link", `https://cline\.bot`, "https://www.example.com/cline", "placeholder URL https://www.example.com/cline"},
		{"size zero", `(?m)^(    size: ).*$`, "${1}0", "images[0].size: not filled"},
		{"no size", `(?m)^    size: .*\n`, "", "images[0].size: not filled"},
		{"uppercase checksum", `(?m)^(      md5: ).*$`, "${1}'9E107D9D372BB6826BD81D3542A419D6'", "images[0].checksum.md5: not filled"},
		{"http download", `(?m)^(    url: ).*$`, "${1}http://downloads.slm-copilot.org/x.qcow2", "images[0].url: no https download URL"},
		{"no creation time", `(?m)^creation_time: .*$`, "creation_time: 0", "creation_time: not filled"},
		{"empty logo", `(?m)^logo: .*$`, "logo: ''", "logo: empty"},
		{"no image", `(?ms)^images:.*\z`, "images: []\n", "images: no image"},
		{"broken YAML", `(?m)^tags:$`, "tags: [", "not valid YAML"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			src := filled(t)
			re := regexp.MustCompile(tc.re)
			require.Regexp(t, re, src)
			got := marketplace.Placeholders([]byte(re.ReplaceAllString(src, tc.repl)))
			assert.Contains(t, strings.Join(got, "\n"), tc.want)
		})
	}
}
