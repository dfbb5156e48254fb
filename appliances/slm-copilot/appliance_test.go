package slmcopilot_test

import (
	"context"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"io/fs"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/slm-copilot/slm-copilot/helpers/reference"
)

// sandbox is a root where appliance.sh's configure stage runs as on a VM.
type sandbox struct {
	root, mainConf string
}

func newSandbox(t *testing.T) *sandbox {
	t.Helper()
	root := t.TempDir()
	require.NoError(t, os.Chmod(root, 0o711), "nginx's workers must reach the sandbox")
	mainConf, err := reference.PrepareSandbox(root)
	require.NoError(t, err)
	return &sandbox{root: root, mainConf: mainConf}
}

// configure runs the configure stage with the VM at 10.0.0.5 and fd00::5, plus env.
func (s *sandbox) configure(t *testing.T, env ...string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := reference.ConfigureCommand(ctx, s.root, s.mainConf, append([]string{"SLM_ADDRESSES=10.0.0.5 fd00::5", "TMPDIR=" + s.path("tmp")}, env...)...)
	out, err := cmd.CombinedOutput()
	staged, _ := filepath.Glob(s.path("tmp/slm-copilot-stage.*"))
	assert.Empty(t, staged, "configure must not leave its staging directory (it can hold a decoded private key)")
	return string(out), err
}

func (s *sandbox) path(rel string) string { return filepath.Join(s.root, rel) }

// snapshot reads every file configure writes (not its log, nor the unpacked appliance).
func (s *sandbox) snapshot(t *testing.T) map[string]string {
	t.Helper()
	files := map[string]string{}
	for _, top := range []string{"etc", "var/lib", "opt"} {
		_ = filepath.WalkDir(s.path(top), func(p string, d fs.DirEntry, err error) error {
			if err != nil || d.IsDir() {
				return err
			}
			if d.Type()&fs.ModeSymlink != 0 {
				target, _ := os.Readlink(p)
				files[p] = "-> " + target
				return nil
			}
			b, err := os.ReadFile(p)
			require.NoError(t, err)
			info, _ := d.Info()
			files[p] = info.Mode().String() + "\n" + string(b)
			return nil
		})
	}
	require.NotEmpty(t, files, "configure wrote nothing")
	return files
}

// reportValue reads one "key = value" line of the report file.
func reportValue(t *testing.T, report, key string) string {
	t.Helper()
	m := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(key) + `\s*=\s*(.*)$`).FindStringSubmatch(report)
	require.NotNil(t, m, "report has no %q line:\n%s", key, report)
	return strings.TrimSpace(m[1])
}

func TestConfigureIsIdempotent(t *testing.T) {
	t.Parallel()
	s := newSandbox(t)
	out, err := s.configure(t)
	require.NoError(t, err, out)
	first := s.snapshot(t)
	report := readFile(t, s.path("etc/one-appliance/config"))
	password := reportValue(t, report, "password")
	assert.GreaterOrEqual(t, len(password), 16, "a generated password has at least 16 characters")

	out, err = s.configure(t)
	require.NoError(t, err, out)
	assert.Equal(t, first, s.snapshot(t), "a second configure run must leave every file byte-identical")
	assert.Equal(t, password, reportValue(t, readFile(t, s.path("etc/one-appliance/config")), "password"), "the generated password must survive a reboot")
	assert.NotContains(t, out, password, "configure must not print the password")
	assert.NotContains(t, readFile(t, s.path("var/log/one-appliance/slm-copilot.log")), password, "the log must not hold the password")
}

func TestConfigureReport(t *testing.T) {
	t.Parallel()
	s := newSandbox(t)
	const password = "report-canary-Pa55word"
	out, err := s.configure(t, "ONEAPP_COPILOT_PASSWORD="+password, "ONEAPP_COPILOT_CONTEXT_SIZE=16384", "ONEAPP_COPILOT_THREADS=3")
	require.NoError(t, err, out)
	reportPath := s.path("etc/one-appliance/config")
	report := readFile(t, reportPath)
	for key, want := range map[string]string{
		"endpoint": "https://10.0.0.5", "username": "copilot", "password": password, "model": "devstral-small-2",
		"context_size": "16384", "threads": "3", "tls_mode": "self-signed",
		"base_url": "https://10.0.0.5/v1", "api_key": password, "model_id": "devstral-small-2", "context_window": "16384",
	} {
		assert.Equal(t, want, reportValue(t, report, key), "report field %s", key)
	}
	assert.Contains(t, report, "NODE_EXTRA_CA_CERTS", "the report must say how to trust the self-signed certificate")
	assert.Equal(t, os.FileMode(0o600), mode(t, reportPath))

	// Every file that holds the password (or its Basic form) is root-only.
	basic := base64.StdEncoding.EncodeToString([]byte("copilot:" + password))
	err = filepath.WalkDir(s.root, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || d.Type()&fs.ModeSymlink != 0 {
			return err
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		if strings.Contains(string(b), password) || strings.Contains(string(b), basic) {
			assert.Zero(t, mode(t, p)&0o077, "%s holds the password but is readable by others (%v)", p, mode(t, p))
		}
		return nil
	})
	require.NoError(t, err)

	model := readFile(t, s.path("opt/local-ai/models/devstral-small-2.yaml"))
	assert.Contains(t, model, "context_size: 16384", "the model YAML must always set context_size")
	assert.Contains(t, model, "threads: 3")
	env := readFile(t, s.path("etc/slm-copilot/local-ai.env"))
	assert.Contains(t, env, "LOCALAI_ADDRESS=127.0.0.1:8080", "the engine listens on loopback only")
	assert.Equal(t, os.FileMode(0o600), mode(t, s.path("etc/slm-copilot/local-ai.env")))
}

func TestConfigureSelfSignedCertificate(t *testing.T) {
	t.Parallel()
	s := newSandbox(t)
	out, err := s.configure(t, "ONEAPP_COPILOT_DOMAIN=copilot.example.com")
	require.NoError(t, err, out)
	c := parseCert(t, readFile(t, s.path("etc/nginx/slm-copilot/tls/cert.pem")))
	assert.Equal(t, []string{"copilot.example.com"}, c.DNSNames)
	require.Len(t, c.IPAddresses, 2)
	assert.True(t, c.IPAddresses[0].Equal(net.ParseIP("10.0.0.5")))
	assert.True(t, c.IPAddresses[1].Equal(net.ParseIP("fd00::5")))
	assert.Equal(t, "https://copilot.example.com", reportValue(t, readFile(t, s.path("etc/one-appliance/config")), "endpoint"))
	site := readFile(t, s.path("etc/nginx/sites-available/slm-copilot.conf"))
	assert.Contains(t, site, "listen 443 ssl;")
	assert.Contains(t, site, "listen 80;")
	assert.NotRegexp(t, `@[A-Z_]+@`, site, "no placeholder may remain in the site")
	link, err := os.Readlink(s.path("etc/nginx/sites-enabled/slm-copilot.conf"))
	require.NoError(t, err)
	assert.Equal(t, s.path("etc/nginx/sites-available/slm-copilot.conf"), link)
	nginx := exec.Command("nginx", "-t", "-q", "-c", s.mainConf)
	nginxOut, err := nginx.CombinedOutput()
	assert.NoError(t, err, "nginx -t: %s", nginxOut)
}

func TestConfigureUserCertificate(t *testing.T) {
	t.Parallel()
	s := newSandbox(t)
	dir := t.TempDir()
	certA, keyA := filepath.Join(dir, "a.pem"), filepath.Join(dir, "a.key")
	out, err := frontdoor(t, "", "tls", certA, keyA, "copilot.example.com")
	require.NoError(t, err, out)
	b64 := func(p string) string { return base64.StdEncoding.EncodeToString([]byte(readFile(t, p))) }
	out, err = s.configure(t, "ONEAPP_COPILOT_TLS_CERT="+b64(certA), "ONEAPP_COPILOT_TLS_KEY="+b64(keyA))
	require.NoError(t, err, out)
	assert.Equal(t, readFile(t, certA), readFile(t, s.path("etc/nginx/slm-copilot/tls/user-cert.pem")))
	assert.Equal(t, os.FileMode(0o600), mode(t, s.path("etc/nginx/slm-copilot/tls/user-key.pem")))
	assert.Contains(t, readFile(t, s.path("etc/nginx/sites-available/slm-copilot.conf")), "user-cert.pem")
	assert.Equal(t, "user", reportValue(t, readFile(t, s.path("etc/one-appliance/config")), "tls_mode"))
}

// TestConfigureRejectsInvalidValues: each bad value fails with a message naming the variable
// and what is allowed, and leaves the previous working configuration untouched.
func TestConfigureRejectsInvalidValues(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	certA, keyA := filepath.Join(dir, "a.pem"), filepath.Join(dir, "a.key")
	certB, keyB := filepath.Join(dir, "b.pem"), filepath.Join(dir, "b.key")
	for _, pair := range [][2]string{{certA, keyA}, {certB, keyB}} {
		out, err := frontdoor(t, "", "tls", pair[0], pair[1], "copilot.example.com")
		require.NoError(t, err, out)
	}
	b64 := func(p string) string { return base64.StdEncoding.EncodeToString([]byte(readFile(t, p))) }
	cases := []struct {
		name string
		env  []string
		want []string
	}{
		{"context_not_a_number", []string{"ONEAPP_COPILOT_CONTEXT_SIZE=lots"}, []string{"ONEAPP_COPILOT_CONTEXT_SIZE='lots'", "2048 to 131072"}},
		{"context_too_small", []string{"ONEAPP_COPILOT_CONTEXT_SIZE=1024"}, []string{"ONEAPP_COPILOT_CONTEXT_SIZE='1024'", "2048 to 131072"}},
		{"context_too_large", []string{"ONEAPP_COPILOT_CONTEXT_SIZE=262144"}, []string{"ONEAPP_COPILOT_CONTEXT_SIZE='262144'", "2048 to 131072"}},
		{"threads_negative", []string{"ONEAPP_COPILOT_THREADS=-1"}, []string{"ONEAPP_COPILOT_THREADS='-1'", "0 to 256"}},
		{"threads_too_many", []string{"ONEAPP_COPILOT_THREADS=512"}, []string{"ONEAPP_COPILOT_THREADS='512'", "0 to 256"}},
		{"password_too_short", []string{"ONEAPP_COPILOT_PASSWORD=short"}, []string{"ONEAPP_COPILOT_PASSWORD is invalid", "8 to 128"}},
		{"password_control_char", []string{"ONEAPP_COPILOT_PASSWORD=pass\tword-long"}, []string{"ONEAPP_COPILOT_PASSWORD is invalid", "printable ASCII"}},
		{"domain_underscore", []string{"ONEAPP_COPILOT_DOMAIN=bad_name.example.com"}, []string{"ONEAPP_COPILOT_DOMAIN='bad_name.example.com'", "fully qualified DNS name"}},
		{"domain_unqualified", []string{"ONEAPP_COPILOT_DOMAIN=copilot"}, []string{"ONEAPP_COPILOT_DOMAIN='copilot'", "fully qualified DNS name"}},
		{"email", []string{"ONEAPP_COPILOT_LETSENCRYPT_EMAIL=nobody"}, []string{"ONEAPP_COPILOT_LETSENCRYPT_EMAIL='nobody'", "e-mail address"}},
		{"cert_without_key", []string{"ONEAPP_COPILOT_TLS_CERT=" + b64(certA)}, []string{"ONEAPP_COPILOT_TLS_CERT and ONEAPP_COPILOT_TLS_KEY go together"}},
		{"cert_not_pem", []string{"ONEAPP_COPILOT_TLS_CERT=bm90IGEgY2VydA==", "ONEAPP_COPILOT_TLS_KEY=" + b64(keyA)}, []string{"ONEAPP_COPILOT_TLS_CERT is invalid", "base64-encoded PEM certificate"}},
		{"key_not_pem", []string{"ONEAPP_COPILOT_TLS_CERT=" + b64(certA), "ONEAPP_COPILOT_TLS_KEY=%%%"}, []string{"ONEAPP_COPILOT_TLS_KEY is invalid"}},
		{"key_of_another_cert", []string{"ONEAPP_COPILOT_TLS_CERT=" + b64(certA), "ONEAPP_COPILOT_TLS_KEY=" + b64(keyB)}, []string{"ONEAPP_COPILOT_TLS_KEY does not belong to ONEAPP_COPILOT_TLS_CERT"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			s := newSandbox(t)
			out, err := s.configure(t, "ONEAPP_COPILOT_PASSWORD=previous-Password1")
			require.NoError(t, err, out)
			before := s.snapshot(t)
			out, err = s.configure(t, tc.env...)
			require.Error(t, err, "configure must fail:\n%s", out)
			for _, w := range tc.want {
				assert.Contains(t, out, w)
			}
			assert.Contains(t, out, "nothing was changed")
			assert.NotContains(t, out, "previous-Password1")
			assert.Equal(t, before, s.snapshot(t), "a rejected value must leave the previous configuration untouched")
		})
	}
}

func parseCert(t *testing.T, pemText string) *x509.Certificate {
	t.Helper()
	block, _ := pem.Decode([]byte(pemText))
	require.NotNil(t, block, "no PEM certificate")
	c, err := x509.ParseCertificate(block.Bytes)
	require.NoError(t, err)
	return c
}

// TestBootstrapPublishesEndpoint: bootstrap publishes the endpoint through OneGate, as the
// deploy suite reads it from the VM's user template.
func TestBootstrapPublishesEndpoint(t *testing.T) {
	t.Parallel()
	s := newSandbox(t)
	out, err := s.configure(t, "ONEAPP_COPILOT_DOMAIN=copilot.example.com")
	require.NoError(t, err, out)
	bin := t.TempDir()
	record := filepath.Join(bin, "args")
	require.NoError(t, os.WriteFile(filepath.Join(bin, "onegate"), []byte("#!/bin/sh\nprintf '%s\\n' \"$@\" > "+record+"\n"), 0o755))
	out, err = stage(t, s.root, "publish_endpoint", []string{
		"PATH=" + bin + ":" + os.Getenv("PATH"), "ONEGATE_ENDPOINT=http://onegate.invalid:5030",
		"SLM_ADDRESSES=10.0.0.5", "ONEAPP_COPILOT_DOMAIN=copilot.example.com",
	})
	require.NoError(t, err, out)
	assert.Equal(t, "vm\nupdate\n--data\nONEAPP_COPILOT_API_ENDPOINT=https://copilot.example.com\n", readFile(t, record))

	out, err = stage(t, s.root, "publish_endpoint", []string{"SLM_ADDRESSES=10.0.0.5"})
	require.NoError(t, err, "without OneGate, bootstrap goes on: %s", out)
	assert.Contains(t, out, "OneGate not available")
}
