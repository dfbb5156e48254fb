package image

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

var update = flag.Bool("update", false, "rewrite the golden files")

// smallImage makes a 64 MiB qcow2 holding 4 MiB of compressible data.
func smallImage(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	raw := filepath.Join(dir, "disk.raw")
	require.NoError(t, os.WriteFile(raw, bytes.Repeat([]byte("slm-copilot "), 4<<20/12), 0o644))
	require.NoError(t, exec.Command("qemu-img", "resize", "-f", "raw", raw, "64M").Run())
	img := filepath.Join(dir, "built.qcow2")
	out, err := exec.Command("qemu-img", "convert", "-O", "qcow2", raw, img).CombinedOutput()
	require.NoError(t, err, "%s", out)
	return img
}

func TestFinish(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	raw := smallImage(t)
	dst := filepath.Join(t.TempDir(), "slm-copilot.qcow2")
	now := time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)
	m, err := Finish(ctx, raw, dst, map[string]string{"localai": "v3.9.0"}, now)
	require.NoError(t, err)

	assert.Equal(t, int64(64<<20), m.VirtualSize, "the manifest carries the virtual size")
	rawInfo, err := os.Stat(raw)
	require.NoError(t, err)
	assert.Less(t, m.FileSize, rawInfo.Size()/4, "compression must shrink compressible data")
	assert.Equal(t, "slm-copilot.qcow2", m.Image)
	assert.Equal(t, now, m.Created)
	assert.Equal(t, "v3.9.0", m.Versions["localai"])

	for _, tool := range []string{"sha256sum", "md5sum"} {
		ext := map[string]string{"sha256sum": ".sha256", "md5sum": ".md5"}[tool]
		cmd := exec.Command(tool, "-c", filepath.Base(dst)+ext)
		cmd.Dir = filepath.Dir(dst)
		out, err := cmd.CombinedOutput()
		assert.NoError(t, err, "%s -c: %s", tool, out)
	}
	sums, err := Checksum(dst)
	require.NoError(t, err)
	assert.Equal(t, sums, m.Checksums)
	manifest, err := os.ReadFile(dst + ".manifest.json")
	require.NoError(t, err)
	assert.Contains(t, string(manifest), `"virtual_size": 67108864`)
	assert.NoFileExists(t, dst+".part")
}

func TestFinishErrors(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dir := t.TempDir()
	corrupt := filepath.Join(dir, "corrupt.qcow2")
	require.NoError(t, os.WriteFile(corrupt, append([]byte("QFI\xfb\x00\x00\x00\x03"), bytes.Repeat([]byte{0xff}, 4096)...), 0o644))
	cases := map[string]struct {
		raw, want string
	}{
		"missing_image": {filepath.Join(dir, "nope.qcow2"), "nope.qcow2"},
		"corrupt_qcow2": {corrupt, "check " + corrupt},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			dst := filepath.Join(t.TempDir(), "out.qcow2")
			_, err := Finish(ctx, tc.raw, dst, nil, time.Now())
			require.Error(t, err)
			assert.Contains(t, err.Error(), tc.want)
			assert.NoFileExists(t, dst, "a failed finish must leave no image")
		})
	}
}

func manifestFixture() Manifest {
	return Manifest{
		VirtualSize: 53687091200,
		Checksums:   Sums{MD5: strings.Repeat("a", 32), SHA256: strings.Repeat("b", 64)},
		Created:     time.Unix(1795700000, 0),
	}
}

func TestUpdateMarketplaceGolden(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "m.yaml")
	src, err := os.ReadFile("testdata/marketplace.yaml")
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(path, src, 0o644))
	require.NoError(t, UpdateMarketplace(path, manifestFixture(), "https://cdn.example.org/slm-copilot-1.0.0.qcow2"))
	got, err := os.ReadFile(path)
	require.NoError(t, err)
	golden := "testdata/marketplace.golden.yaml"
	if *update {
		require.NoError(t, os.WriteFile(golden, got, 0o644))
	}
	want, err := os.ReadFile(golden)
	require.NoError(t, err)
	assert.Equal(t, string(want), string(got))

	require.NoError(t, UpdateMarketplace(path, manifestFixture(), "https://cdn.example.org/slm-copilot-1.0.0.qcow2"))
	again, err := os.ReadFile(path)
	require.NoError(t, err)
	assert.Equal(t, string(got), string(again), "a second update with the same values changes nothing")
}

// TestUpdateMarketplaceAppliance: on the appliance's real YAML, exactly the five values'
// lines change and yamllint still passes.
func TestUpdateMarketplaceAppliance(t *testing.T) {
	t.Parallel()
	files, err := filepath.Glob("../../appliances/slm-copilot/*-*-*-*-*.yaml")
	require.NoError(t, err)
	require.Len(t, files, 1)
	src, err := os.ReadFile(files[0])
	require.NoError(t, err)
	path := filepath.Join(t.TempDir(), filepath.Base(files[0]))
	require.NoError(t, os.WriteFile(path, src, 0o644))
	require.NoError(t, UpdateMarketplace(path, manifestFixture(), "https://cdn.example.org/slm-copilot-1.0.0.qcow2"))
	got, err := os.ReadFile(path)
	require.NoError(t, err)
	before, after := strings.Split(string(src), "\n"), strings.Split(string(got), "\n")
	require.Equal(t, len(before), len(after))
	var changed []string
	for i := range before {
		if before[i] != after[i] {
			changed = append(changed, strings.TrimSpace(after[i]))
		}
	}
	assert.ElementsMatch(t, []string{
		"creation_time: 1795700000",
		"url: https://cdn.example.org/slm-copilot-1.0.0.qcow2",
		"md5: '" + strings.Repeat("a", 32) + "'",
		"sha256: '" + strings.Repeat("b", 64) + "'",
	}, changed, "size already holds 53687091200; nothing else may change")
	out, err := exec.Command("yamllint", "-d", "{extends: default, rules: {line-length: disable}}", path).CombinedOutput()
	assert.NoError(t, err, "%s", out)
}

func TestUpdateMarketplaceWithoutImages(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "m.yaml")
	require.NoError(t, os.WriteFile(path, []byte("---\nname: x\ncreation_time: 1\n"), 0o644))
	err := UpdateMarketplace(path, manifestFixture(), "https://x")
	assert.True(t, errors.Is(err, ErrNoImage), "got %v", err)
}
