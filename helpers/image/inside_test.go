package image

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// diskWithFiles makes a qcow2 with an msdos partition table and one ext4 partition holding
// files (relative paths), as the build VM's disk is laid out.
func diskWithFiles(t *testing.T, files ...string) string {
	t.Helper()
	dir := t.TempDir()
	src := filepath.Join(dir, "src")
	for _, f := range files {
		require.NoError(t, os.MkdirAll(filepath.Join(src, filepath.Dir(f)), 0o755))
		require.NoError(t, os.WriteFile(filepath.Join(src, f), []byte(f), 0o644))
	}
	raw := filepath.Join(dir, "disk.raw")
	for _, args := range [][]string{
		{"truncate", "-s", "64M", raw},
		{"parted", "-s", raw, "mklabel", "msdos", "mkpart", "primary", "ext4", "1MiB", "100%"},
		{"mkfs.ext4", "-q", "-F", "-E", "offset=1048576", "-d", src, raw, "60M"},
		{"qemu-img", "convert", "-O", "qcow2", raw, filepath.Join(dir, "disk.qcow2")},
	} {
		out, err := exec.Command(args[0], args[1:]...).CombinedOutput()
		require.NoError(t, err, "%v: %s", args, out)
	}
	return filepath.Join(dir, "disk.qcow2")
}

func TestMissing(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("looking inside an image needs root (loop devices) or libguestfs; CI runs as root")
	}
	t.Parallel()
	img := diskWithFiles(t, "etc/os-release", "usr/local/bin/slm-copilot-certify")
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	missing, err := Missing(ctx, img, []string{"/usr/local/bin/slm-copilot-certify", "/opt/local-ai/models/m.gguf", "/etc/os-release"})
	require.NoError(t, err)
	assert.Equal(t, []string{"/opt/local-ai/models/m.gguf"}, missing)
	leftovers, _ := filepath.Glob(filepath.Join(filepath.Dir(img), ".inspect-*"))
	assert.Empty(t, leftovers, "the raw copy is removed")

	_, err = Missing(ctx, diskWithFiles(t, "data/x"), []string{"/data/x"})
	assert.ErrorContains(t, err, "no partition holds a root filesystem")
}
