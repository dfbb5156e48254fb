package build

import (
	"context"
	"flag"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/slm-copilot/slm-copilot/helpers/image"
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
	require.NoError(t, os.MkdirAll(root, 0o755), "the smoke build's cache folder")
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

	l.certify, l.packerLog = filepath.Join(l.root, "slm-copilot-certify.test"), filepath.Join(l.root, "packer.log")

	began := time.Now()
	password := runBuild(t, l, map[string]string{
		"accelerator": "tcg", "cpus": "2", "memory": "2048", "disk_size": "4G", "ssh_timeout": "20m",
		"install_context": "false", "install_one_apps": "false",
	})
	t.Logf("packer QEMU build under TCG: %s", time.Since(began).Round(time.Second))
	checkQemuCommand(t, l.packerLog, password)
	raw, err := os.Stat(l.raw)
	require.NoError(t, err)
	t.Logf("Packer's output image: %s (%d bytes)", image.GB(raw.Size()), raw.Size())

	yml := filepath.Join(l.root, "marketplace.yaml")
	src, err := os.ReadFile(marketplaceFile(t))
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(yml, src, 0o644))
	left := finish(t, l, yml, "file://"+l.final)
	assert.Equal(t, []string{"images[0].url: no https download URL"}, left,
		"the build fills every other placeholder (the smoke image is published at a file:// URL)")
	verify(t, l, shippedFiles()...)
	t.Logf("smoke build end to end: %s", time.Since(began).Round(time.Second))
}

// checkQemuCommand reads how Packer started qemu (PACKER_LOG) and checks the settings the
// image's size and speed depend on, and that the build password is not in the log.
func checkQemuCommand(t *testing.T, log, password string) {
	t.Helper()
	b, err := os.ReadFile(log)
	require.NoError(t, err, "Packer's log")
	assert.NotContains(t, string(b), password, "Packer's log must not hold the build password")
	var qemu string
	for _, line := range strings.Split(string(b), "\n") {
		if strings.Contains(line, "Executing ") && strings.Contains(line, "qemu-system-x86_64") {
			qemu = line
		}
	}
	require.NotEmpty(t, qemu, "no qemu command line in %s", log)
	t.Logf("qemu: %s", qemu)
	for _, want := range []string{`"-cpu", "max"`, "discard=unmap", "detect-zeroes=unmap"} {
		assert.Contains(t, qemu, want, "qemu command line")
	}
}
