package build

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gruntwork-io/terratest/modules/packer"
	"github.com/stretchr/testify/require"

	slmcopilot "github.com/slm-copilot/slm-copilot/appliances/slm-copilot"
	"github.com/slm-copilot/slm-copilot/helpers/buildhost"
	"github.com/slm-copilot/slm-copilot/helpers/image"
)

// layout names the files of one build under -work-dir.
type layout struct {
	root, inputs, oneApps, base, contextDeb, seed, output, raw, dist, final string
}

func newLayout() layout {
	l := layout{root: *workDir}
	l.inputs = filepath.Join(l.root, "inputs")
	l.oneApps = filepath.Join(l.inputs, "one-apps")
	l.base = filepath.Join(l.inputs, *baseImage)
	l.contextDeb = filepath.Join(l.inputs, filepath.Base(*contextURL))
	l.seed = filepath.Join(l.root, "seed.iso")
	l.output = filepath.Join(l.root, "output")
	l.raw = filepath.Join(l.output, "slm-copilot.qcow2")
	l.dist = filepath.Join(l.root, "dist")
	l.final = filepath.Join(l.dist, fmt.Sprintf("slm-copilot-%s.qcow2", *version))
	return l
}

// TestBuild builds the marketplace image. Each stage can be skipped with SKIP_<stage>=1 to
// reuse what an earlier run left in -work-dir (inputs are cached and verified anyway).
func TestBuild(t *testing.T) {
	if !*buildFlag {
		t.Skip("TestBuild builds the whole image and needs a build host (KVM, 60 GB, internet, hours): run `make build` or pass -args -build")
	}
	l := newLayout()
	require.NoError(t, os.MkdirAll(l.inputs, 0o755))
	began := time.Now()
	// Stages follow terratest's convention (SKIP_<stage> set: skip it) without importing
	// test-structure, which drags Kubernetes and AWS clients into the build.
	stage := func(name string, run func()) {
		if os.Getenv("SKIP_"+name) != "" {
			t.Logf("stage %s: skipped (SKIP_%s is set): reusing what %s holds", name, name, l.root)
			return
		}
		t.Logf("stage %s: starting (build time %s)", name, time.Since(began).Round(time.Second))
		run()
		t.Logf("stage %s: done (build time %s)", name, time.Since(began).Round(time.Second))
	}
	stage("preflight", func() { preflight(t, l) })
	stage("inputs", func() { fetchInputs(t, l) })
	stage("packer", func() {
		runBuild(t, l, map[string]string{
			"accelerator": *accelerator, "cpus": fmt.Sprint(*cpus), "memory": fmt.Sprint(*memoryMiB), "disk_size": *diskSize,
			"one_apps_dir": l.oneApps, "context_package": l.contextDeb,
		})
	})
	stage("finish", func() { finish(t, l, marketplaceFile(t)) })
	stage("verify", func() {
		verify(t, l, "/etc/one-appliance/service.d/appliance.sh", "/usr/local/bin/local-ai", "/opt/local-ai/models/"+sources(t, l)["MODEL_FILE"])
	})
}

func preflight(t *testing.T, l layout) {
	home, _ := os.UserHomeDir()
	problems := buildhost.Check(buildhost.Requirements{
		Packer:       *packerBinary,
		PluginDir:    filepath.Join(home, ".config", "packer", "plugins", "github.com", "hashicorp", "qemu"),
		Accelerator:  *accelerator,
		KVMDevice:    "/dev/kvm",
		WorkDir:      l.root,
		MinFreeBytes: *minFreeGB << 30,
	})
	if *contextSHA256 == "" {
		problems = append(problems, buildhost.Problem{What: "the one-context package has no pinned sha256", Fix: "pass -context-sha256=<sha256 of " + *contextURL + ">"})
	}
	require.NoError(t, buildhost.Error(problems))
}

// appliance runs one of appliance.sh's download helpers with the work dir as its root.
func appliance(t *testing.T, l layout, function string, args ...string) string {
	t.Helper()
	require.NoError(t, os.RemoveAll(filepath.Join(l.root, "appliance")))
	require.NoError(t, slmcopilot.Unpack(filepath.Join(l.root, "appliance")))
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Hour)
	defer cancel()
	cmd := slmcopilot.Command(ctx, l.root, function, nil, args...)
	var out strings.Builder
	cmd.Stdout = &out
	cmd.Stderr = os.Stderr // curl's progress bar
	require.NoError(t, cmd.Run(), "%s %v", function, args)
	return strings.TrimSpace(out.String())
}

func fetchInputs(t *testing.T, l layout) {
	sha := appliance(t, l, "release_checksum", *baseURL+"/SHA256SUMS", *baseImage)
	t.Logf("base image %s: sha256 %s (from %s/SHA256SUMS)", *baseImage, sha, *baseURL)
	appliance(t, l, "download_verified", *baseURL+"/"+*baseImage, l.base, sha)
	appliance(t, l, "download_verified", *contextURL, l.contextDeb, *contextSHA256)
	checkoutOneApps(t, l.oneApps)
}

// checkoutOneApps clones one-apps once and checks out the pinned ref.
func checkoutOneApps(t *testing.T, dir string) {
	git := func(args ...string) string {
		out, err := exec.Command("git", args...).CombinedOutput()
		require.NoError(t, err, "git %v: %s", args, out)
		return strings.TrimSpace(string(out))
	}
	if _, err := os.Stat(filepath.Join(dir, ".git")); err != nil {
		git("clone", "--quiet", *oneAppsRepo, dir)
	} else {
		git("-C", dir, "fetch", "--quiet", "--tags", "origin")
	}
	git("-C", dir, "checkout", "--quiet", "--detach", *oneAppsRef)
	t.Logf("one-apps at %s (%s)", *oneAppsRef, git("-C", dir, "rev-parse", "HEAD"))
}

// transientErrors are Packer failures worth one more try: the network, not the build.
var transientErrors = map[string]string{
	"(?i)connection reset by peer":                "network connection reset",
	"(?i)temporary failure in name resolution":    "DNS failure",
	"(?i)TLS handshake timeout":                   "TLS handshake timeout",
	"(?i)Could not resolve host|Failed to fetch":  "package mirror unreachable",
	"(?i)Timeout waiting for SSH.*handshake fail": "SSH handshake failed while booting",
}

// runBuild runs the two Packer builds in order, the seed ISO and then the QEMU build (Packer
// would run them in parallel), with the layout's paths and vars.
func runBuild(t *testing.T, l layout, vars map[string]string) {
	require.NoError(t, os.RemoveAll(l.output), "Packer wants a fresh output directory")
	all := map[string]string{
		"base_image": l.base, "seed_iso": l.seed, "output_dir": l.output, "version": *version,
		"appliance_dir": filepath.Join(repoRoot(), "appliances", "slm-copilot"),
	}
	for k, v := range vars {
		all[k] = v
	}
	secret := secretVarFile(t, randomPassword(t))
	args := []string{"build", "-only=seed.null.seed", "-var-file", secret}
	for k, v := range all {
		args = append(args, "-var", k+"="+v)
	}
	out, err := runPacker(t, append(args, ".")...)
	require.NoError(t, err, "seed ISO build:\n%s", out)
	// terratest resolves "packer" in this process's PATH.
	t.Setenv("PATH", filepath.Dir(*packerBinary)+":"+os.Getenv("PATH"))
	packer.BuildArtifact(t, &packer.Options{
		Template:                   ".",
		WorkingDir:                 packerDir(),
		Only:                       "slm-copilot.qemu.slm_copilot",
		Vars:                       all,
		VarFiles:                   []string{secret},
		Env:                        map[string]string{"CHECKPOINT_DISABLE": "1"},
		RetryableErrors:            transientErrors,
		MaxRetries:                 2,
		TimeBetweenRetries:         time.Minute,
		DisableTemporaryPluginPath: true, // the plugin `make deps` installed
	})
	require.FileExists(t, l.raw, "Packer finished without %s", l.raw)
}

// marketplaceFile is -marketplace-yaml, or the appliance's <uuid>.yaml.
func marketplaceFile(t *testing.T) string {
	t.Helper()
	if *marketplaceYML != "" {
		return *marketplaceYML
	}
	files, err := filepath.Glob(filepath.Join(repoRoot(), "appliances", "slm-copilot", "*-*-*-*-*.yaml"))
	require.NoError(t, err)
	require.Len(t, files, 1, "one marketplace YAML expected")
	return files[0]
}

// finish compresses the raw image, writes checksums and manifest, and updates yml.
func finish(t *testing.T, l layout, yml string) {
	require.NoError(t, os.MkdirAll(l.dist, 0o755))
	versions := map[string]string{"appliance": *version, "base_image": *baseImage, "one_apps": *oneAppsRef}
	for k, v := range sources(t, l) {
		versions[strings.ToLower(k)] = v
	}
	m, err := image.Finish(context.Background(), l.raw, l.final, versions, time.Now())
	require.NoError(t, err)
	t.Logf("image %s: virtual %d bytes, file %d bytes, sha256 %s", l.final, m.VirtualSize, m.FileSize, m.Checksums.SHA256)
	require.NoError(t, image.UpdateMarketplace(yml, m, *publishURL))
	t.Logf("updated %s", yml)
}

// sources are appliance.sh's build sources (LocalAI version, backend image, model).
func sources(t *testing.T, l layout) map[string]string {
	t.Helper()
	out := map[string]string{}
	for _, line := range strings.Split(appliance(t, l, "print_sources"), "\n") {
		if k, v, ok := strings.Cut(line, "="); ok {
			out[k] = v
		}
	}
	return out
}

// verify checks the finished image; with libguestfs it also looks for want inside it.
func verify(t *testing.T, l layout, want ...string) {
	ctx := context.Background()
	require.NoError(t, image.Check(ctx, l.final))
	info, err := image.Inspect(ctx, l.final)
	require.NoError(t, err)
	require.Equal(t, "qcow2", info.Format)
	t.Logf("verified %s: qcow2, virtual size %d bytes", l.final, info.VirtualSize)
	if _, err := exec.LookPath("virt-ls"); err != nil {
		t.Logf("libguestfs (virt-ls) not installed: not looking inside the image")
		return
	}
	for _, path := range want {
		out, err := exec.CommandContext(ctx, "virt-ls", "-a", l.final, filepath.Dir(path)).CombinedOutput()
		require.NoError(t, err, "virt-ls %s: %s", path, out)
		require.Contains(t, string(out), filepath.Base(path), "%s missing from the image", path)
	}
}
