package build

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gruntwork-io/terratest/modules/packer"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	slmcopilot "github.com/slm-copilot/slm-copilot/appliances/slm-copilot"
	"github.com/slm-copilot/slm-copilot/helpers/buildhost"
	"github.com/slm-copilot/slm-copilot/helpers/image"
	"github.com/slm-copilot/slm-copilot/helpers/marketplace"
)

// layout names the files of one build under -work-dir.
type layout struct {
	root, inputs, oneApps, base, contextDeb, seed, output, raw, dist, final string

	certify   string // the compiled acceptance suite the image carries
	packerLog string // Packer's debug log (PACKER_LOG), for a failed build's post-mortem
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
	l.certify = filepath.Join(l.root, "slm-copilot-certify.test")
	l.packerLog = filepath.Join(l.root, "packer.log")
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
	stage("finish", func() {
		left := finish(t, l, marketplaceFile(t), *publishURL)
		require.Empty(t, left, "the marketplace YAML still holds placeholders a release must not publish")
	})
	stage("verify", func() {
		want := append(shippedFiles(), "/usr/local/bin/local-ai")
		if *bakeModel {
			want = append(want, "/opt/local-ai/models/"+sources(t, l)["MODEL_FILE"])
		}
		verify(t, l, want...)
	})
}

// shippedFiles are what every image carries, the smoke build's included.
func shippedFiles() []string {
	return []string{"/etc/one-appliance/service.d/appliance.sh", "/etc/one-appliance/slm-copilot-version",
		"/usr/local/bin/slm-copilot-certify", "/usr/local/lib/slm-copilot/slm-copilot-certify.test"}
}

// modelBytesEstimate sizes the pre-warm when the model's size is not pinned: Devstral Small 2
// Q4_K_M is about 14.3 GB.
const modelBytesEstimate = 14_300_000_000

func preflight(t *testing.T, l layout) {
	home, _ := os.UserHomeDir()
	src := sources(t, l)
	req := buildhost.Requirements{
		Packer:       *packerBinary,
		PluginDir:    filepath.Join(home, ".config", "packer", "plugins", "github.com", "hashicorp", "qemu"),
		Accelerator:  *accelerator,
		KVMDevice:    "/dev/kvm",
		WorkDir:      l.root,
		MinFreeBytes: *minFreeGB << 30,
		VMMemoryMiB:  *memoryMiB,
	}
	if *bakeModel {
		req.PrewarmModelBytes, req.PrewarmContext = modelBytesEstimate, *prewarmContext
		if n, err := strconv.ParseInt(src["MODEL_SIZE"], 10, 64); err == nil && n > 0 {
			req.PrewarmModelBytes = n
		}
	}
	problems := append(buildhost.Check(req), releaseProblems(l)...)
	require.NoError(t, buildhost.Error(problems))
	t.Logf("model %s (sha256 %s, %s bytes), baked: %v", src["MODEL_URL"], src["MODEL_SHA256"], src["MODEL_SIZE"], *bakeModel)
}

// releaseProblems are the pins a release build cannot go without: every input verified, and
// a real download URL for the marketplace.
func releaseProblems(l layout) []buildhost.Problem {
	var problems []buildhost.Problem
	if *contextSHA256 == "" {
		problems = append(problems, buildhost.Problem{What: "the one-context package has no pinned sha256",
			Fix: "pass -context-sha256=$(curl -fsSL " + *contextURL + " | sha256sum | cut -d' ' -f1)"})
	}
	if out, err := applianceRun(l, "require_pinned_model"); err != nil {
		problems = append(problems, buildhost.Problem{What: "the model is not pinned by commit, sha256 and size (appliance.sh's install stage would refuse it):\n" + indent(out),
			Fix: "pass -model-commit=<commit> -model-sha256=<sha256> -model-size=<bytes> (or -model-url=.../resolve/<commit>/...)"})
	}
	if !strings.HasPrefix(*publishURL, "https://") {
		problems = append(problems, buildhost.Problem{What: fmt.Sprintf("-publish-url %q is not an https URL: the marketplace YAML needs the URL the image will be downloaded from", *publishURL),
			Fix: "pass -publish-url=https://<your download server>/slm-copilot-" + *version + ".qcow2"})
	}
	return problems
}

// modelEnv passes the model flags to appliance.sh; unset flags keep its pinned defaults.
func modelEnv() []string {
	var env []string
	for name, value := range map[string]string{"MODEL_URL": *modelURL, "MODEL_COMMIT": *modelCommit, "MODEL_SHA256": *modelSHA256, "MODEL_SIZE": *modelSize} {
		if value != "" {
			env = append(env, name+"="+value)
		}
	}
	return env
}

// appliance runs one of appliance.sh's download helpers with the work dir as its root and
// the build's model pins, and returns its standard output.
func appliance(t *testing.T, l layout, function string, args ...string) string {
	t.Helper()
	require.NoError(t, unpackAppliance(l))
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Hour)
	defer cancel()
	cmd := slmcopilot.Command(ctx, l.root, function, modelEnv(), args...)
	var out strings.Builder
	cmd.Stdout = &out
	cmd.Stderr = os.Stderr // curl's progress bar
	require.NoError(t, cmd.Run(), "%s %v", function, args)
	return strings.TrimSpace(out.String())
}

// applianceRun runs one of appliance.sh's checks and returns its combined output.
func applianceRun(l layout, function string) (string, error) {
	if err := unpackAppliance(l); err != nil {
		return "", err
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	out, err := slmcopilot.Command(ctx, l.root, function, modelEnv()).CombinedOutput()
	return strings.TrimSpace(string(out)), err
}

func unpackAppliance(l layout) error {
	if err := os.RemoveAll(filepath.Join(l.root, "appliance")); err != nil {
		return err
	}
	return slmcopilot.Unpack(filepath.Join(l.root, "appliance"))
}

func indent(s string) string { return "      " + strings.ReplaceAll(s, "\n", "\n      ") }

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

// transientErrors are Packer failures worth one more try: the network, not the build. Each
// matches one specific line shape: apt's ERRORS (an ordinary build prints W: lines with
// "Failed to fetch" that do not fail it), curl's network exit codes, appliance.sh's own cut
// download line, and Go's network errors from LocalAI's backend pull.
var transientErrors = map[string]string{
	`(?m)^.*\bE: Failed to fetch \S+ +.*(Temporary failure resolving|Could not resolve|Connection timed out|Connection failed|Could not connect|Unable to connect|Connection reset by peer)`: "package mirror unreachable",
	`(?m)^.*\bE: Unable to fetch some archives`:                                                            "package mirror incomplete",
	`(?m)^.*\bcurl: \((6|7|18|28|35|52|56)\) `:                                                             "download interrupted (curl network error)",
	`(?m)^.*\[error\] download \S+ failed or was cut; .* the next run resumes it$`:                         "download cut (resumes on retry)",
	`(?m)^.*\b(net/http: TLS handshake timeout|dial tcp \S+: i/o timeout|read: connection reset by peer)$`: "network error pulling an image",
}

// runBuild runs the two Packer builds in order, the seed ISO and then the QEMU build (Packer
// would run them in parallel), with the layout's paths and vars. It returns the build VM's
// one-time root password, for tests that prove it leaked nowhere.
func runBuild(t *testing.T, l layout, vars map[string]string) string {
	require.NoError(t, os.RemoveAll(l.output), "Packer wants a fresh output directory")
	compileCertify(t, l.certify)
	all := map[string]string{
		"base_image": l.base, "seed_iso": l.seed, "output_dir": l.output, "version": *version,
		"appliance_dir":  filepath.Join(repoRoot(), "appliances", "slm-copilot"),
		"certify_binary": l.certify,
		"bake_model":     strconv.FormatBool(*bakeModel), "prewarm_context": strconv.Itoa(*prewarmContext),
		"model_url": *modelURL, "model_commit": *modelCommit, "model_sha256": *modelSHA256, "model_size": *modelSize,
	}
	for k, v := range vars {
		all[k] = v
	}
	password := randomPassword(t)
	secret := secretVarFile(t, password)
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
		Env:                        map[string]string{"CHECKPOINT_DISABLE": "1", "PACKER_LOG": "1", "PACKER_LOG_PATH": l.packerLog},
		RetryableErrors:            transientErrors,
		MaxRetries:                 2,
		TimeBetweenRetries:         time.Minute,
		DisableTemporaryPluginPath: true, // the plugin `make deps` installed
	})
	require.FileExists(t, l.raw, "Packer finished without %s", l.raw)
	return password
}

// compileCertify compiles the acceptance suite into out, statically, for the image to carry.
func compileCertify(t *testing.T, out string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "go", "test", "-c", "-trimpath", "-o", out, "./acceptance")
	cmd.Dir = repoRoot()
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	b, err := cmd.CombinedOutput()
	require.NoError(t, err, "compile the acceptance suite for the image:\n%s", b)
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

// finish compresses the raw image within its budget, writes checksums and manifest (with the
// model actually baked), and updates yml for a release at url. It returns the placeholders
// left in yml (marketplace.Placeholders), which a release must not publish.
func finish(t *testing.T, l layout, yml, url string) []string {
	require.NotEmpty(t, url, "-publish-url is required: the marketplace YAML must say where the image is downloaded from")
	require.NoError(t, os.MkdirAll(l.dist, 0o755))
	versions := map[string]string{"appliance": *version, "base_image": *baseImage, "one_apps": *oneAppsRef, "bake_model": strconv.FormatBool(*bakeModel)}
	for k, v := range sources(t, l) {
		versions[strings.ToLower(k)] = v
	}
	t.Logf("compressing %s (qemu-img convert -c -W)", l.raw)
	m, err := image.Finish(context.Background(), l.raw, l.final, image.FinishOptions{
		Versions: versions, Now: time.Now(), MaxBytes: int64(*maxImageGB * 1e9), Progress: os.Stdout,
	})
	require.NoError(t, err, "finish stage (budget -max-image-gb=%g)", *maxImageGB)
	t.Logf("image %s: virtual %d bytes, file %s (%d bytes, budget %g GB), sha256 %s", l.final, m.VirtualSize, image.GB(m.FileSize), m.FileSize, *maxImageGB, m.Checksums.SHA256)
	require.NoError(t, image.UpdateMarketplace(yml, m, image.Release{URL: url, Version: *version, OneAppsVersion: strings.TrimPrefix(*oneAppsRef, "v")}))
	b, err := os.ReadFile(yml)
	require.NoError(t, err)
	left := marketplace.Placeholders(b)
	t.Logf("updated %s (placeholders left: %d)", yml, len(left))
	for _, p := range left {
		t.Logf("  placeholder: %s", p)
	}
	return left
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

// verify checks the finished image and that want (paths in the guest) are inside it.
func verify(t *testing.T, l layout, want ...string) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Hour)
	defer cancel()
	require.NoError(t, image.Check(ctx, l.final))
	info, err := image.Inspect(ctx, l.final)
	require.NoError(t, err)
	require.Equal(t, "qcow2", info.Format)
	t.Logf("verified %s: qcow2, virtual size %d bytes", l.final, info.VirtualSize)
	missing, err := image.Missing(ctx, l.final, want)
	if errors.Is(err, image.ErrCannotLook) {
		t.Logf("not looking inside the image: %v", err)
		return
	}
	require.NoError(t, err)
	assert.Empty(t, missing, "files missing from the image")
	t.Logf("inside the image: %s", strings.Join(want, ", "))
}

// TestReleasePreflight runs the build as a user would, without the release pins: it must stop
// in preflight, before any download, with every missing pin and the command that gives it.
func TestReleasePreflight(t *testing.T) {
	t.Parallel()
	work := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, os.Args[0], "-test.run", "^TestBuild$", "-test.v",
		"-build", "-work-dir="+work, "-accelerator=tcg", "-min-free-gb=0", "-memory=1024", "-bake-model=false")
	out, err := cmd.CombinedOutput()
	require.Error(t, err, "a build without pins must fail:\n%s", out)
	for _, want := range []string{
		"stage preflight: starting",
		"the one-context package has no pinned sha256", "-context-sha256=",
		"the model is not pinned by commit, sha256 and size", "refusing to download an unpinned model",
		"huggingface.co/api/models/", "sha256sum model.gguf",
		`-publish-url "" is not an https URL`,
	} {
		assert.Contains(t, string(out), want)
	}
	assert.NotContains(t, string(out), "stage inputs", "nothing may be downloaded before the pins are there")
}
