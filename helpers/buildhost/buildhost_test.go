package buildhost

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// fakePacker writes a packer that reports version v (the real one takes minutes to build).
func fakePacker(t *testing.T, v string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "packer")
	require.NoError(t, os.WriteFile(p, []byte("#!/bin/sh\necho 'Packer v"+v+"'\n"), 0o755))
	return p
}

func pluginDir(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(dir, "packer-plugin-qemu_v1.0.9_x5.0_linux_amd64"), nil, 0o755))
	return dir
}

func TestCheck(t *testing.T) {
	// Not parallel: some cases empty the PATH.
	good := func(t *testing.T) Requirements {
		return Requirements{Packer: fakePacker(t, "1.9.4"), PluginDir: pluginDir(t), Accelerator: "tcg", KVMDevice: "/nonexistent/kvm", WorkDir: t.TempDir(), MinFreeBytes: 1 << 20,
			VMMemoryMiB: 1024, HostMemoryMiB: 1 << 20}
	}
	cases := []struct {
		name   string
		change func(t *testing.T, r *Requirements)
		path   string // PATH for the case; empty keeps the machine's
		want   []string
	}{
		{name: "ready", change: func(*testing.T, *Requirements) {}},
		{name: "packer_missing", change: func(t *testing.T, r *Requirements) { r.Packer = "/nonexistent/packer" }, want: []string{"packer (/nonexistent/packer) not usable", "make deps"}},
		{name: "packer_too_old", change: func(t *testing.T, r *Requirements) { r.Packer = fakePacker(t, "1.6.6") }, want: []string{"packer 1.6 is older than 1.9"}},
		{name: "plugin_missing", change: func(t *testing.T, r *Requirements) { r.PluginDir = t.TempDir() }, want: []string{"qemu plugin v1.0.9 is not installed"}},
		{name: "plugin_other_version", change: func(t *testing.T, r *Requirements) {
			r.PluginDir = t.TempDir()
			require.NoError(t, os.WriteFile(filepath.Join(r.PluginDir, "packer-plugin-qemu_v1.1.0_x5.0_linux_amd64"), nil, 0o755))
		}, want: []string{"found packer-plugin-qemu_v1.1.0_x5.0_linux_amd64", "pins exactly v1.0.9"}},
		{name: "prewarm_fits", change: func(t *testing.T, r *Requirements) {
			r.PrewarmModelBytes, r.PrewarmContext, r.VMMemoryMiB = 14_300_000_000, 4096, 16326
		}},
		{name: "prewarm_too_little_memory", change: func(t *testing.T, r *Requirements) {
			r.PrewarmModelBytes, r.PrewarmContext, r.VMMemoryMiB = 14_300_000_000, 32768, 16384
		}, want: []string{"the build VM has 16384 MiB but the pre-warm needs 20806 MiB", "-memory=20806"}},
		{name: "no_prewarm_small_vm", change: func(t *testing.T, r *Requirements) { r.VMMemoryMiB = 4096 }},
		{name: "host_too_small", change: func(t *testing.T, r *Requirements) { r.VMMemoryMiB, r.HostMemoryMiB = 18432, 16000 },
			want: []string{"the build VM wants 18432 MiB but this host has 16000 MiB"}},
		{name: "kvm_unusable", change: func(t *testing.T, r *Requirements) { r.Accelerator = "kvm" }, want: []string{"KVM is not usable", "-accelerator=tcg"}},
		{name: "accelerator_unknown", change: func(t *testing.T, r *Requirements) { r.Accelerator = "hvf" }, want: []string{`unknown accelerator "hvf"`}},
		{name: "disk_full", change: func(t *testing.T, r *Requirements) { r.MinFreeBytes = 1 << 62 }, want: []string{"GB free in", "-work-dir"}},
		{name: "tools_missing", change: func(*testing.T, *Requirements) {}, path: "/nonexistent", want: []string{
			"qemu-system-x86_64 is not on the PATH", "apt-get install qemu-system-x86",
			"qemu-img is not on the PATH", "apt-get install qemu-utils",
			"cloud-localds is not on the PATH", "apt-get install cloud-image-utils"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := good(t)
			tc.change(t, &r)
			if tc.path != "" {
				t.Setenv("PATH", tc.path)
			}
			err := Error(Check(r))
			if len(tc.want) == 0 {
				assert.NoError(t, err)
				return
			}
			require.Error(t, err)
			for _, w := range tc.want {
				assert.Contains(t, err.Error(), w)
			}
			assert.True(t, strings.HasPrefix(err.Error(), "the build host is not ready:"))
		})
	}
}

// TestPrewarmMemoryMiB: the rule README states, on the appliance's real numbers.
func TestPrewarmMemoryMiB(t *testing.T) {
	t.Parallel()
	cases := []struct {
		model   int64
		context int
		want    int
	}{
		{model: 14_300_000_000, context: 4096, want: 16326},  // the default pre-warm fits 16 GiB + margin
		{model: 14_300_000_000, context: 32768, want: 20806}, // the appliance's default context would not
		{model: 1 << 20, context: 0, want: 1 + SystemReserveMiB},
	}
	for _, tc := range cases {
		assert.Equal(t, tc.want, PrewarmMemoryMiB(tc.model, tc.context), "model %d bytes, context %d", tc.model, tc.context)
	}
	assert.Equal(t, 160*1024, KVCacheBytesPerToken, "Devstral Small 2's f16 KV cache per token")
}
