package build

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
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
	t.Run("validate_full_build", func(t *testing.T) {
		oneApps, deb := oneAppsStandIn(t)
		out, err := runPacker(t, "validate", "-var-file", secret, "-var", "base_image="+base,
			"-var", "one_apps_dir="+oneApps, "-var", "context_package="+deb, ".")
		assert.NoError(t, err, "packer validate:\n%s", out)
	})
	t.Run("validate_smoke_build", func(t *testing.T) {
		out, err := runPacker(t, "validate", "-var-file", secret, "-var", "base_image="+base,
			"-var", "install_context=false", "-var", "install_one_apps=false", "-var", "accelerator=tcg", ".")
		assert.NoError(t, err, "packer validate:\n%s", out)
	})
	t.Run("validation_rules", func(t *testing.T) {
		cases := map[string][]string{
			"accelerator": {"-var", "accelerator=hvf"},
			"disk_size":   {"-var", "disk_size=lots"},
			"memory":      {"-var", "memory=512"},
		}
		for name, args := range cases {
			full := append(append([]string{"validate", "-var-file", secret, "-var", "base_image=" + base,
				"-var", "install_context=false", "-var", "install_one_apps=false"}, args...), ".")
			out, err := runPacker(t, full...)
			assert.Error(t, err, "%s must be refused", name)
			assert.Contains(t, out, "The "+name+" must", "the error names the variable")
		}
		out, err := runPacker(t, "validate", "-var", "build_password=short", "-var", "base_image="+base, ".")
		assert.Error(t, err)
		assert.Contains(t, out, "at least 16 characters")
		assert.NotContains(t, out, "short", "a sensitive value must not be echoed")
	})
	t.Run("seed_iso_build", func(t *testing.T) {
		password := randomPassword(t)
		iso := filepath.Join(t.TempDir(), "seed.iso")
		out, err := runPacker(t, "build", "-only=seed.null.seed", "-var-file", secretVarFile(t, password),
			"-var", "base_image="+base, "-var", "seed_iso="+iso, ".")
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
