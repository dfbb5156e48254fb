package slmcopilot_test

import (
	"crypto/x509"
	"encoding/pem"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// frontdoor runs frontdoor.sh as the appliance and the reference appliance do.
func frontdoor(t *testing.T, stdin string, args ...string) (string, error) {
	t.Helper()
	cmd := exec.Command("bash", append([]string{"frontdoor.sh"}, args...)...)
	cmd.Stdin = strings.NewReader(stdin)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	require.NoError(t, err)
	return string(b)
}

func mode(t *testing.T, path string) os.FileMode {
	t.Helper()
	fi, err := os.Stat(path)
	require.NoError(t, err)
	return fi.Mode().Perm()
}

func TestTLSSelfSigned(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	cert, key := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	out, err := frontdoor(t, "", "tls", cert, key, "10.0.0.5", "fd00::5", "copilot.example.com")
	require.NoError(t, err, out)

	block, _ := pem.Decode([]byte(readFile(t, cert)))
	require.NotNil(t, block, "no PEM in %s", cert)
	c, err := x509.ParseCertificate(block.Bytes)
	require.NoError(t, err)
	assert.Equal(t, []string{"copilot.example.com"}, c.DNSNames)
	require.Len(t, c.IPAddresses, 2)
	assert.True(t, c.IPAddresses[0].Equal(net.ParseIP("10.0.0.5")))
	assert.True(t, c.IPAddresses[1].Equal(net.ParseIP("fd00::5")))
	assert.Equal(t, os.FileMode(0o600), mode(t, key), "the private key must be root-only")

	before := readFile(t, cert)
	out, err = frontdoor(t, "", "tls", cert, key, "10.0.0.5", "fd00::5", "copilot.example.com")
	require.NoError(t, err, out)
	assert.Equal(t, before, readFile(t, cert), "same names: the certificate must be kept")

	out, err = frontdoor(t, "", "tls", cert, key, "10.0.0.6")
	require.NoError(t, err, out)
	assert.NotEqual(t, before, readFile(t, cert), "new names: a new certificate")
}

func TestTLSRejectsBadName(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	out, err := frontdoor(t, "", "tls", filepath.Join(dir, "c"), filepath.Join(dir, "k"), "bad name;rm")
	assert.Error(t, err)
	assert.Contains(t, out, "not an IP address or DNS name")
}

func TestCredentials(t *testing.T) {
	t.Parallel()
	const password = `s3cret p@ss"w'o\rd$x`
	dir := filepath.Join(t.TempDir(), "creds")
	out, err := frontdoor(t, password+"\n", "credentials", dir, "copilot")
	require.NoError(t, err, out)
	assert.NotContains(t, out, password, "the script must not print the password")

	assert.Equal(t, os.FileMode(0o640), mode(t, filepath.Join(dir, "htpasswd")), "htpasswd: readable by nginx's group only")
	assert.Equal(t, os.FileMode(0o600), mode(t, filepath.Join(dir, "secrets.conf")))
	assert.Equal(t, os.FileMode(0o600), mode(t, filepath.Join(dir, "engine.key")))
	assert.NotContains(t, readFile(t, filepath.Join(dir, "htpasswd")), password, "htpasswd must hold a hash")
	check := exec.Command("htpasswd", "-vi", filepath.Join(dir, "htpasswd"), "copilot")
	check.Stdin = strings.NewReader(password)
	assert.NoError(t, check.Run(), "htpasswd must verify the password")

	files := map[string]string{}
	for _, f := range []string{"htpasswd", "secrets.conf", "engine.key"} {
		files[f] = readFile(t, filepath.Join(dir, f))
	}
	out, err = frontdoor(t, password+"\n", "credentials", dir, "copilot")
	require.NoError(t, err, out)
	for f, before := range files {
		assert.Equal(t, before, readFile(t, filepath.Join(dir, f)), "%s must be byte-identical after a second run", f)
	}

	out, err = frontdoor(t, "another-password\n", "credentials", dir, "copilot")
	require.NoError(t, err, out)
	assert.NotEqual(t, files["secrets.conf"], readFile(t, filepath.Join(dir, "secrets.conf")), "a new password changes the Bearer check")
	assert.Equal(t, files["engine.key"], readFile(t, filepath.Join(dir, "engine.key")), "the engine key survives a password change")
}

func TestCredentialsRejectBadInput(t *testing.T) {
	t.Parallel()
	cases := map[string]struct{ stdin, user, want string }{
		"empty_password":     {"\n", "copilot", "empty password"},
		"control_char":       {"pass\tword\n", "copilot", "printable ASCII"},
		"non_ascii":          {"pässword\n", "copilot", "printable ASCII"},
		"longer_than_bcrypt": {strings.Repeat("a", 73) + "\n", "copilot", "at most 72 characters"},
		"user_with_colon":    {"password\n", "co:pilot", "bad user name"},
		"user_with_spaces":   {"password\n", "co pilot", "bad user name"},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			out, err := frontdoor(t, tc.stdin, "credentials", filepath.Join(t.TempDir(), "creds"), tc.user)
			assert.Error(t, err)
			assert.Contains(t, out, tc.want)
		})
	}
}

func TestRenderSite(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	tmpl := filepath.Join(dir, "t.tmpl")
	require.NoError(t, os.WriteFile(tmpl, []byte("listen @PORT@; root @ROOT@; x @PORT@;\n"), 0o644))
	out := filepath.Join(dir, "site.conf")

	msg, err := frontdoor(t, "", "site", tmpl, out, "PORT=443", "ROOT=/a&b|c")
	require.NoError(t, err, msg)
	assert.Equal(t, "listen 443; root /a&b|c; x 443;\n", readFile(t, out), "values are literal, every occurrence filled")

	msg, err = frontdoor(t, "", "site", tmpl, filepath.Join(dir, "other.conf"), "PORT=443")
	assert.Error(t, err)
	assert.Contains(t, msg, "no value for @ROOT@")

	msg, err = frontdoor(t, "", "site", tmpl, out, "lower=1")
	assert.Error(t, err)
	assert.Contains(t, msg, "bad setting")
}

func TestUsage(t *testing.T) {
	t.Parallel()
	out, err := frontdoor(t, "", "no-such-command")
	assert.Error(t, err)
	assert.Contains(t, out, "usage:")
}
