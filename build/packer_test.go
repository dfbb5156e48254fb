package build

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/gruntwork-io/terratest/modules/retry"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	slmcopilot "github.com/slm-copilot/slm-copilot/appliances/slm-copilot"
	"github.com/slm-copilot/slm-copilot/helpers/buildhost"
)

// runPacker runs the real Packer in packer/ and returns its output.
func runPacker(t *testing.T, args ...string) (string, error) {
	t.Helper()
	if _, err := os.Stat(*packerBinary); err != nil {
		t.Fatalf("packer not found at %s: run `make deps` (it builds Packer v1.9.4 from the Go module proxy)", *packerBinary)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, *packerBinary, args...)
	cmd.Dir = packerDir()
	cmd.Env = append(os.Environ(), "CHECKPOINT_DISABLE=1", "PACKER_NO_COLOR=1")
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// secretVarFile writes the build password into a var file, so it never appears in a
// command line or a log.
func secretVarFile(t *testing.T, password string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "secret.pkrvars.hcl")
	require.NoError(t, os.WriteFile(path, []byte(`build_password = "`+password+`"`+"\n"), 0o600))
	return path
}

func randomPassword(t *testing.T) string {
	t.Helper()
	b := make([]byte, 16)
	_, err := rand.Read(b)
	require.NoError(t, err)
	return hex.EncodeToString(b)
}

// oneAppsStandIn lays out the file names packer validate checks for in a one-apps checkout.
func oneAppsStandIn(t *testing.T) (dir, deb string) {
	t.Helper()
	dir = t.TempDir()
	for _, f := range []string{"appliances/scripts/net-90-service-appliance", "appliances/scripts/net-99-report-ready",
		"appliances/service.sh", "appliances/lib/common.sh", "appliances/lib/functions.sh"} {
		require.NoError(t, os.MkdirAll(filepath.Join(dir, filepath.Dir(f)), 0o755))
		require.NoError(t, os.WriteFile(filepath.Join(dir, f), nil, 0o644))
	}
	deb = filepath.Join(dir, "one-context.deb")
	require.NoError(t, os.WriteFile(deb, nil, 0o644))
	return dir, deb
}

// TestPackerTemplate: packer/ is `packer fmt` clean, validates for the full build and the
// smoke build, and its seed-ISO build runs for real.
func TestPackerTemplate(t *testing.T) {
	t.Parallel()
	secret := secretVarFile(t, randomPassword(t))
	base := filepath.Join(t.TempDir(), "base.qcow2")

	t.Run("fmt", func(t *testing.T) {
		out, err := runPacker(t, "fmt", "-check", "-diff", "-recursive", ".")
		assert.NoError(t, err, "packer fmt would change packer/:\n%s", out)
	})
	certify := filepath.Join(t.TempDir(), "slm-copilot-certify.test")
	require.NoError(t, os.WriteFile(certify, nil, 0o755))
	t.Run("validate_full_build", func(t *testing.T) {
		oneApps, deb := oneAppsStandIn(t)
		out, err := runPacker(t, "validate", "-var-file", secret, "-var", "base_image="+base, "-var", "certify_binary="+certify,
			"-var", "one_apps_dir="+oneApps, "-var", "context_package="+deb, ".")
		assert.NoError(t, err, "packer validate:\n%s", out)
	})
	t.Run("validate_small_image", func(t *testing.T) {
		oneApps, deb := oneAppsStandIn(t)
		out, err := runPacker(t, "validate", "-var-file", secret, "-var", "base_image="+base, "-var", "certify_binary="+certify,
			"-var", "one_apps_dir="+oneApps, "-var", "context_package="+deb, "-var", "bake_model=false", "-var", "memory=4096",
			"-var", "model_url=https://huggingface.co/o/r/resolve/"+strings.Repeat("a", 40)+"/m.gguf",
			"-var", "model_sha256="+strings.Repeat("b", 64), "-var", "model_size=14300000000", ".")
		assert.NoError(t, err, "packer validate:\n%s", out)
	})
	t.Run("validate_smoke_build", func(t *testing.T) {
		out, err := runPacker(t, "validate", "-var-file", secret, "-var", "base_image="+base, "-var", "certify_binary="+certify,
			"-var", "install_context=false", "-var", "install_one_apps=false", "-var", "accelerator=tcg", ".")
		assert.NoError(t, err, "packer validate:\n%s", out)
	})
	t.Run("validation_rules", func(t *testing.T) {
		cases := map[string][]string{
			"accelerator":     {"-var", "accelerator=hvf"},
			"disk_size":       {"-var", "disk_size=lots"},
			"memory":          {"-var", "memory=512"},
			"prewarm_context": {"-var", "prewarm_context=131072"},
			"model_url":       {"-var", "model_url=https://huggingface.co/o/r/resolve/main/m.gguf"},
			"model_sha256":    {"-var", "model_sha256=ABC"},
			"model_size":      {"-var", "model_size=14GB"},
			"certify_binary":  {"-var", "certify_binary="},
		}
		for name, args := range cases {
			full := append(append([]string{"validate", "-var-file", secret, "-var", "base_image=" + base, "-var", "certify_binary=" + certify,
				"-var", "install_context=false", "-var", "install_one_apps=false"}, args...), ".")
			out, err := runPacker(t, full...)
			assert.Error(t, err, "%s must be refused", name)
			assert.Contains(t, out, "The "+name+" must", "the error names the variable")
		}
		out, err := runPacker(t, "validate", "-var", "build_password=short", "-var", "base_image="+base, "-var", "certify_binary="+certify, ".")
		assert.Error(t, err)
		assert.Contains(t, out, "at least 16 characters")
		assert.NotContains(t, out, "short", "a sensitive value must not be echoed")
	})
	t.Run("seed_iso_build", func(t *testing.T) {
		password := randomPassword(t)
		iso := filepath.Join(t.TempDir(), "seed.iso")
		out, err := runPacker(t, "build", "-only=seed.null.seed", "-var-file", secretVarFile(t, password),
			"-var", "base_image="+base, "-var", "seed_iso="+iso, "-var", "certify_binary="+certify, ".")
		require.NoError(t, err, "packer build -only=seed.null.seed:\n%s", out)
		assert.NotContains(t, out, password, "Packer's output must not show the build password")
		userData, err := exec.Command("isoinfo", "-R", "-i", iso, "-x", "/user-data").Output()
		require.NoError(t, err, "read user-data from the seed ISO")
		assert.Contains(t, string(userData), "hashed_passwd: '$6$", "the seed carries the password's hash")
		assert.NotContains(t, string(userData), password, "the seed must not carry the password itself")
		assert.True(t, strings.HasPrefix(string(userData), "#cloud-config"))
		metaData, err := exec.Command("isoinfo", "-R", "-i", iso, "-x", "/meta-data").Output()
		require.NoError(t, err)
		assert.Contains(t, string(metaData), "instance-id")
	})
}

// TestTransientErrors runs terratest's own retry logic with the build's table: network
// failures are retried, a deterministic failure is not, even after apt printed a warning
// with "Failed to fetch" in it.
func TestTransientErrors(t *testing.T) {
	t.Parallel()
	const aptWarning = "    slm-copilot.qemu.slm_copilot: W: Failed to fetch http://archive.ubuntu.com/ubuntu/dists/noble/InRelease  Could not resolve 'archive.ubuntu.com'\n" +
		"    slm-copilot.qemu.slm_copilot: W: Some index files failed to download. They have been ignored, or old ones used instead.\n"
	cases := []struct {
		name   string
		output string
		tries  int
	}{
		{name: "apt_mirror_unreachable", tries: 3, output: "    slm-copilot.qemu.slm_copilot: E: Failed to fetch http://archive.ubuntu.com/ubuntu/pool/main/n/nginx/nginx_1.24.0.deb  Temporary failure resolving 'archive.ubuntu.com'\n"},
		{name: "curl_reset", tries: 3, output: "    slm-copilot.qemu.slm_copilot: curl: (56) Recv failure: Connection reset by peer\n"},
		{name: "model_download_cut", tries: 3, output: "    slm-copilot.qemu.slm_copilot: 2026-11-27T10:00:00Z [error] download https://huggingface.co/x/resolve/abc/m.gguf failed or was cut; /opt/local-ai/models/m.gguf.part is kept and the next run resumes it\n"},
		{name: "backend_pull_tls_timeout", tries: 3, output: "    slm-copilot.qemu.slm_copilot: Error: pulling quay.io/go-skynet/local-ai-backends:v4.9.0-cpu-llama-cpp: net/http: TLS handshake timeout\n"},
		{name: "apt_warning_then_script_error", tries: 1, output: aptWarning + "    slm-copilot.qemu.slm_copilot: /etc/one-appliance/service.d/appliance.sh: line 12: syntax error\n"},
		{name: "apt_warning_then_checksum_mismatch", tries: 1, output: aptWarning + "    slm-copilot.qemu.slm_copilot: [error] download https://x/m.gguf: sha256 00 does not match 11; removed the file (mirror corrupt or wrong pin)\n"},
		{name: "package_missing", tries: 1, output: "    slm-copilot.qemu.slm_copilot: E: Unable to locate package certbot\n"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tries := 0
			_, err := retry.DoWithRetryableErrorsE(t, "packer build", transientErrors, 2, time.Millisecond, func() (string, error) {
				tries++
				return tc.output, errors.New("exit status 1")
			})
			require.Error(t, err)
			assert.Equal(t, tc.tries, tries, "attempts for output:\n%s", tc.output)
		})
	}
}

// TestUploadedFilesAreShipped: Packer uploads exactly the appliance files the reference
// appliance embeds (files.go), so what is certified locally is what the image carries.
func TestUploadedFilesAreShipped(t *testing.T) {
	t.Parallel()
	hcl, err := os.ReadFile(filepath.Join(packerDir(), "slm-copilot.pkr.hcl"))
	require.NoError(t, err)
	var uploaded []string
	for _, m := range regexp.MustCompile(`"\$\{var\.appliance_dir\}/([^"]+)"`).FindAllStringSubmatch(string(hcl), -1) {
		uploaded = append(uploaded, m[1])
	}
	entries, err := fs.ReadDir(slmcopilot.Files, ".")
	require.NoError(t, err)
	var embedded []string
	for _, e := range entries {
		embedded = append(embedded, e.Name())
	}
	assert.ElementsMatch(t, embedded, uploaded, "files.go's go:embed list and packer/'s appliance upload must agree")
}

// qemuStandIn is a qemu-system-x86_64 that answers -version like qemu 7.2, records its
// arguments and then idles like a guest that never brings up SSH.
const qemuStandIn = `#!/bin/sh
if [ "$1" = "-version" ]; then echo "QEMU emulator version 7.2.0"; exit 0; fi
printf '%s\n' "$@" >"$0.args"
exec sleep 120
`

// TestQemuCommandLine runs the real Packer and qemu plugin on packer/ with a stand-in qemu, and
// reads how the plugin starts the guest: the host's CPU under KVM and "max" under TCG (v1.0.9
// passes no -cpu otherwise: qemu64, no AVX), and a disk that hands freed blocks back.
func TestQemuCommandLine(t *testing.T) {
	t.Parallel()
	for accel, cpu := range map[string]string{"kvm": "host", "tcg": "max"} {
		t.Run(accel, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			qemu := filepath.Join(dir, "qemu-system-x86_64")
			require.NoError(t, os.WriteFile(qemu, []byte(qemuStandIn), 0o755))
			base := filepath.Join(dir, "base.qcow2")
			out, err := exec.Command("qemu-img", "create", "-q", "-f", "qcow2", base, "64M").CombinedOutput()
			require.NoError(t, err, "%s", out)
			certify := filepath.Join(dir, "certify.test")
			require.NoError(t, os.WriteFile(certify, nil, 0o755))
			out2, err := runPacker(t, "build", "-only=slm-copilot.qemu.slm_copilot", "-var-file", secretVarFile(t, randomPassword(t)),
				"-var", "qemu_binary="+qemu, "-var", "accelerator="+accel, "-var", "base_image="+base,
				"-var", "output_dir="+filepath.Join(dir, "out"), "-var", "seed_iso="+filepath.Join(dir, "seed.iso"),
				"-var", "certify_binary="+certify, "-var", "install_context=false", "-var", "install_one_apps=false",
				"-var", "disk_size=64M", "-var", "memory=1024", "-var", "ssh_timeout=2s", ".")
			require.Error(t, err, "the stand-in never answers SSH, so the build must fail:\n%s", out2)
			b, err := os.ReadFile(qemu + ".args")
			require.NoError(t, err, "Packer never started qemu:\n%s", out2)
			args := strings.Split(strings.TrimSpace(string(b)), "\n")
			assert.Equal(t, cpu, argAfter(args, "-cpu"), "qemu -cpu with accelerator=%s", accel)
			var drive string
			for i, a := range args {
				if a == "-drive" && i+1 < len(args) && strings.Contains(args[i+1], "if=virtio") {
					drive = args[i+1]
				}
			}
			assert.Contains(t, drive, "discard=unmap", "the disk must pass the guest's fstrim through")
			assert.Contains(t, drive, "detect-zeroes=unmap", "zeroes the guest writes must not allocate")
		})
	}
}

// argAfter returns the argument that follows flag, or "" (qemu64: no -cpu at all).
func argAfter(args []string, flag string) string {
	for i, a := range args {
		if a == flag && i+1 < len(args) {
			return args[i+1]
		}
	}
	return ""
}

// TestImageTrimmed: the pieces that keep the image small stay in packer/: Packer does not
// compact (the finish stage recompresses; a second 20 GB copy only costs time and disk), and
// the cleanup step ends with fstrim, after everything it deletes.
func TestImageTrimmed(t *testing.T) {
	t.Parallel()
	hcl, err := os.ReadFile(filepath.Join(packerDir(), "slm-copilot.pkr.hcl"))
	require.NoError(t, err)
	assert.Regexp(t, `(?m)^\s*skip_compaction\s*=\s*true\s*$`, string(hcl))
	cleanup, err := os.ReadFile(filepath.Join(packerDir(), "scripts", "90-cleanup.sh"))
	require.NoError(t, err)
	main := string(cleanup[strings.LastIndex(string(cleanup), "main() {"):])
	calls := strings.Fields(main[:strings.Index(main, "\n}")])
	assert.Equal(t, "trim_free_space", calls[len(calls)-1], "cleanup's last step must be the trim")
	assert.Regexp(t, `(?m)^\s*fstrim -av$`, string(cleanup))
}

// TestPluginPinned: packer/ requires exactly the qemu plugin `make deps` builds and preflight
// checks, so a newer plugin with other defaults cannot slip into a build.
func TestPluginPinned(t *testing.T) {
	t.Parallel()
	hcl, err := os.ReadFile(filepath.Join(packerDir(), "slm-copilot.pkr.hcl"))
	require.NoError(t, err)
	m := regexp.MustCompile(`(?s)qemu = \{.*?version\s*=\s*"([^"]*)"`).FindSubmatch(hcl)
	require.NotNil(t, m, "required_plugins has no qemu version")
	assert.Equal(t, "= "+buildhost.PluginVersion, string(m[1]), "packer/ must pin the qemu plugin exactly")
	deps, err := os.ReadFile(filepath.Join(repoRoot(), "fixtures", "deps.sh"))
	require.NoError(t, err)
	assert.Contains(t, string(deps), `PACKER_QEMU_VERSION="v`+buildhost.PluginVersion+`"`, "make deps builds another plugin version")
}
