package build

import (
	"context"
	"flag"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/slm-copilot/slm-copilot/helpers/reference"
)

var smokeFlag = flag.Bool("smoke", false, "run TestSmokeBuild: the Packer QEMU pipeline under TCG on a Debian image made here (root, ~15 minutes)")

// skippedInSmoke are the provisioning steps the smoke build switches off: they need the
// internet or files from outside this repository.
var skippedInSmoke = []string{
	"one-context package (install_context=false)",
	"one-apps framework files and context hooks (install_one_apps=false)",
	"service_install: LocalAI, llama-cpp backend, model download, pre-warm (install_one_apps=false)",
}

// TestSmokeBuild runs the real Packer QEMU pipeline of packer/ under TCG: seed ISO, boot of
// a small Debian image made with debootstrap, SSH, the provisioning steps that need no
// internet, shutdown; then compression, checksums, manifest, marketplace YAML (a copy) and
// verification.
func TestSmokeBuild(t *testing.T) {
	if !*smokeFlag {
		t.Skip("TestSmokeBuild takes about 15 minutes of software emulation: run `make test-smoke-build`")
	}
	for _, s := range skippedInSmoke {
		t.Logf("smoke build skips: %s", s)
	}
	root := filepath.Join(reference.CacheDir(), "smoke")
	base := filepath.Join(root, "debian-base.qcow2")
	if _, err := os.Stat(base); err != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Minute)
		defer cancel()
		cmd := exec.CommandContext(ctx, "bash", filepath.Join(repoRoot(), "fixtures", "debian-image.sh"), base)
		cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
		require.NoError(t, cmd.Run(), "make the Debian base image")
	}
	l := newLayout()
	l.root, l.base = t.TempDir(), base
	l.seed, l.output = filepath.Join(l.root, "seed.iso"), filepath.Join(l.root, "output")
	l.raw, l.dist = filepath.Join(l.output, "slm-copilot.qcow2"), filepath.Join(l.root, "dist")
	l.final = filepath.Join(l.dist, "slm-copilot-smoke.qcow2")

	began := time.Now()
	runBuild(t, l, map[string]string{
		"accelerator": "tcg", "cpus": "2", "memory": "2048", "disk_size": "4G", "ssh_timeout": "20m",
		"install_context": "false", "install_one_apps": "false",
	})
	t.Logf("packer QEMU build under TCG: %s", time.Since(began).Round(time.Second))

	yml := filepath.Join(l.root, "marketplace.yaml")
	src, err := os.ReadFile(marketplaceFile(t))
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(yml, src, 0o644))
	finish(t, l, yml)
	verify(t, l, "/etc/one-appliance/service.d/appliance.sh", "/etc/one-appliance/slm-copilot-version")
	t.Logf("smoke build end to end: %s", time.Since(began).Round(time.Second))
}
