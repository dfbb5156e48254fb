package image

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
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
	m, err := Finish(ctx, raw, dst, FinishOptions{Versions: map[string]string{"localai": "v4.9.0"}, Now: now})
	require.NoError(t, err)

	assert.Equal(t, int64(64<<20), m.VirtualSize, "the manifest carries the virtual size")
	rawInfo, err := os.Stat(raw)
	require.NoError(t, err)
	assert.Less(t, m.FileSize, rawInfo.Size()/4, "compression must shrink compressible data")
	assert.Equal(t, "slm-copilot.qcow2", m.Image)
	assert.Equal(t, now, m.Created)
	assert.Equal(t, "v4.9.0", m.Versions["localai"])

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
			_, err := Finish(ctx, tc.raw, dst, FinishOptions{Now: time.Now()})
			require.Error(t, err)
			assert.Contains(t, err.Error(), tc.want)
			assert.NoFileExists(t, dst, "a failed finish must leave no image")
		})
	}
}

// TestFinishBudget: an image over its budget fails, says its size, and is kept without
// checksums or manifest; a budget it fits passes.
func TestFinishBudget(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	raw := smallImage(t)
	dir := t.TempDir()
	fits, err := Finish(ctx, raw, filepath.Join(dir, "fits.qcow2"), FinishOptions{Now: time.Now(), MaxBytes: 64 << 20})
	require.NoError(t, err)

	dst := filepath.Join(dir, "over.qcow2")
	_, err = Finish(ctx, raw, dst, FinishOptions{Now: time.Now(), MaxBytes: fits.FileSize - 1})
	require.ErrorIs(t, err, ErrOverBudget)
	assert.Contains(t, err.Error(), fmt.Sprintf("(%d bytes)", fits.FileSize), "the error gives the size")
	assert.FileExists(t, dst, "the image stays for inspection")
	assert.NoFileExists(t, dst+".sha256", "an image over budget gets no checksums")
	assert.NoFileExists(t, dst+".manifest.json")
}

// TestCompressProgress: the copy is compressed by parallel coroutines writing out of order
// (-W; a 15 GB image takes hours without it), and qemu-img's progress reaches the writer. A
// qemu-img wrapper first on the PATH records the arguments of the real one.
func TestCompressProgress(t *testing.T) { // not parallel: it sets PATH
	qemuImgPath, err := exec.LookPath("qemu-img")
	require.NoError(t, err)
	raw := smallImage(t)
	bin := t.TempDir()
	record := filepath.Join(bin, "args")
	wrapper := "#!/bin/sh\n[ \"$1\" = convert ] && printf '%s\\n' \"$@\" >" + record + "\nexec " + qemuImgPath + " \"$@\"\n"
	require.NoError(t, os.WriteFile(filepath.Join(bin, "qemu-img"), []byte(wrapper), 0o755))
	t.Setenv("PATH", bin+":"+os.Getenv("PATH"))

	dst := filepath.Join(t.TempDir(), "c.qcow2")
	var progress bytes.Buffer
	require.NoError(t, Compress(context.Background(), raw, dst, &progress))
	assert.Contains(t, progress.String(), "100.00/100%", "qemu-img -p progress")
	args, err := os.ReadFile(record)
	require.NoError(t, err)
	for _, want := range []string{"-c", "-W", "-p"} {
		assert.Contains(t, strings.Fields(string(args)), want, "qemu-img convert arguments")
	}
	out, err := exec.Command(qemuImgPath, "check", "--output=json", dst).Output()
	require.NoError(t, err)
	assert.Contains(t, string(out), `"compressed-clusters"`, "the copy holds compressed clusters")
}

func releaseFixture() Release {
	return Release{URL: "https://cdn.example.org/slm-copilot-1.0.0.qcow2", Version: "1.0.0", OneAppsVersion: "6.10.0-3"}
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
	require.NoError(t, UpdateMarketplace(path, manifestFixture(), releaseFixture()))
	got, err := os.ReadFile(path)
	require.NoError(t, err)
	golden := "testdata/marketplace.golden.yaml"
	if *update {
		require.NoError(t, os.WriteFile(golden, got, 0o644))
	}
	want, err := os.ReadFile(golden)
	require.NoError(t, err)
	assert.Equal(t, string(want), string(got))

	require.NoError(t, UpdateMarketplace(path, manifestFixture(), releaseFixture()))
	again, err := os.ReadFile(path)
	require.NoError(t, err)
	assert.Equal(t, string(got), string(again), "a second update with the same values changes nothing")
}

// TestUpdateMarketplaceAppliance: on the appliance's real YAML, exactly the build's values'
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
	require.NoError(t, UpdateMarketplace(path, manifestFixture(), releaseFixture()))
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
		"version: 1.0.0-202611261333",
		"one-apps_version: 6.10.0-3",
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
	err := UpdateMarketplace(path, manifestFixture(), releaseFixture())
	assert.True(t, errors.Is(err, ErrNoImage), "got %v", err)
}

// TestMarketplaceVersionBumps: two builds a minute apart publish increasing versions.
func TestMarketplaceVersionBumps(t *testing.T) {
	t.Parallel()
	first := time.Date(2026, 11, 27, 9, 59, 30, 0, time.UTC)
	a, b := MarketplaceVersion("1.0.0", first), MarketplaceVersion("1.0.0", first.Add(time.Minute))
	assert.Equal(t, "1.0.0-202611270959", a)
	assert.Less(t, a, b, "a later build must publish a newer version")
}

// TestUpdateMarketplaceRefusesEmpty: a release without a URL or versions fails, naming the field.
func TestUpdateMarketplaceRefusesEmpty(t *testing.T) {
	t.Parallel()
	src, err := os.ReadFile("testdata/marketplace.yaml")
	require.NoError(t, err)
	for field, r := range map[string]Release{
		"images[0].url":    {Version: "1.0.0", OneAppsVersion: "6.10.0-3"},
		"one-apps_version": {URL: "https://x/y.qcow2", Version: "1.0.0"},
	} {
		path := filepath.Join(t.TempDir(), "m.yaml")
		require.NoError(t, os.WriteFile(path, src, 0o644))
		err := UpdateMarketplace(path, manifestFixture(), r)
		require.Error(t, err, field)
		assert.Contains(t, err.Error(), "no value for "+field)
		got, _ := os.ReadFile(path)
		assert.Equal(t, string(src), string(got), "a refused update leaves the file as it was")
	}
}
